"""The package as built and installed: the wheel, its data files, an install outside the checkout."""
