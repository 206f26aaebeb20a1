"""Process bootstrap used by `leaktrace run`: initialise leaktrace before the program's code."""
