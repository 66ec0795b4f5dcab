import sys
from pathlib import Path

# The image runs flows from src/ (the set_working_directory pull step); tests do the same.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
