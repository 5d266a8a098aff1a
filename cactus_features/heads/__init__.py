"""Stage two: heads trained on cached features."""
