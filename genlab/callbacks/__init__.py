"""Lightning callbacks: sample grids, divergence guard, ..."""
