import sys
from pathlib import Path

# Lets the tests import the toy task script that also runs as a subprocess.
sys.path.insert(0, str(Path(__file__).resolve().parent))
