"""Side-by-side benchmarks of imgdiff against classical and learned peers (`benchmarks/run.py`)."""
