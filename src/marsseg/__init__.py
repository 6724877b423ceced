"""Mars terrain segmentation study (AN2DL 2024-2025 Homework 2) as a reproducible workflow.

The data side (loading, validation, outlier filter, split, augmentation, post-processing, metric,
tables) needs numpy/scipy/pandas only; only `marsseg.models`, `marsseg.training` and
`marsseg.prediction` import Keras.
"""

IMAGE_HEIGHT = 64
IMAGE_WIDTH = 128
NUM_CLASSES = 5
CLASS_NAMES = ("background", "soil", "bedrock", "sand", "big_rock")
SCORED_CLASSES = (1, 2, 3, 4)
BIG_ROCK = 4
