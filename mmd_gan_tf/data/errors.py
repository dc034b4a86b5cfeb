"""The data sources' errors that callers tell apart from other bad values."""


class TooFewImages(ValueError):
  """A source or split holds fewer images than asked for (one batch, or `first_images`'s count)."""
