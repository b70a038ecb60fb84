"""A simulated treadmill: belt physics plus wire personalities, served on a pseudo-terminal."""
