"""The package's constants: FER2013's class names, face size and split names, and the version."""

__version__ = "0.1.0"

CLASS_NAMES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
"""FER2013 emotion names, indexed by the CSV's ``emotion`` label (0-6)."""

NUM_CLASSES: int = len(CLASS_NAMES)

FACE_SIZE: int = 48
"""Side of a FER2013 face in pixels (48x48 grayscale)."""

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
"""FER2013 ``Usage`` values: train, validation (model selection) and held-out test."""
