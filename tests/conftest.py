import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os

# Keras 3 reads its backend once, at import: the test extra installs torch (CPU) for it.
os.environ["KERAS_BACKEND"] = "torch"
