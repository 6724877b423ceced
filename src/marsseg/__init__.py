"""Mars terrain segmentation study (AN2DL 2024-2025 Homework 2) as a reproducible workflow.

The data side (loading, validation, outlier filter, split, augmentation, post-processing, metric,
tables) needs numpy/scipy/pandas only; only `marsseg.models`, `marsseg.training` and
`marsseg.prediction` import Keras.

Importing the package sets two TensorFlow defaults (a value already in the environment wins):
TF_FORCE_GPU_ALLOW_GROWTH=true, so that every job on a GPU (training, prediction, tuning) takes
only the GPU memory it needs instead of all of it; and, before TensorFlow's first op, which is
when it reads it, TF_CPU_ALLOCATOR_USE_BFC=true, so that TensorFlow keeps its CPU tensors in a pool
of its own instead of asking malloc for each. Through malloc, on Linux, the large activations of
every training step are mapped and zeroed afresh whenever glibc has handed their memory back to
the system: measured on a 2-core CPU (single UNet, quarter width, passes of 8 images, an epoch
of 512 images), 290,000 to 1.6 million page faults and 1.5 s of kernel time per epoch against
about 100 faults and 0.7 s with the pool, and up to half the process's CPU time in the kernel
in a process that had held large arrays before. Set the variable to false to opt out.
"""

import os

os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

IMAGE_HEIGHT = 64
IMAGE_WIDTH = 128
NUM_CLASSES = 5
CLASS_NAMES = ("background", "soil", "bedrock", "sand", "big_rock")
SCORED_CLASSES = (1, 2, 3, 4)
BIG_ROCK = 4
