"""The stuck kernel states and the training-time warning about them."""

from mmd_gan_tf import kernel_health


def _means(real_real, fake_fake, real_fake):
  return {"kernel/real_real": real_real, "kernel/fake_fake": fake_fake, "kernel/real_fake": real_fake,
          "loss/critic": -1.0}


def test_a_stuck_state_is_warned_about_once_after_its_patience_and_again_after_a_recovery():
  watch = kernel_health.StallWatch("rep", patience=300)
  saturated, healthy, zero = _means(0.0, 1.0, 0.0), _means(0.19, 0.88, 0.39), _means(1e-4, 1e-3, 1e-4)
  assert watch.update(100, healthy) is None
  assert watch.update(200, saturated) is None  # stuck since 200
  assert watch.update(450, saturated) is None  # 250 steps: within the patience
  line = watch.update(500, saturated)
  assert line.startswith("--loss=rep: kernel means saturated (real_real 0.00, fake_fake 1.00, real_fake 0.00) "
                         "since step 200: the critic separates real from fake completely")
  assert "another --seed or --loss=rep_b" in line
  assert watch.update(600, saturated) is None  # once per episode
  assert watch.update(700, healthy) is None
  assert watch.update(800, zero) is None
  zero_line = watch.update(1100, zero)
  assert "kernel means all-zero" in zero_line and "since step 800" in zero_line
  other = kernel_health.StallWatch("rep_b", patience=0)
  assert "--loss=hinge" in other.update(5, saturated)
  assert kernel_health.StallWatch("hinge", patience=0).update(5, {"loss/critic": 1.0}) is None  # no kernel
