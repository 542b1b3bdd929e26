"""C sources of the built-in multipliers (package data, see approxsim.multipliers)."""
