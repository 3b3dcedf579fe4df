"""Reproductions of the papers labelsky implements, on the simulator."""
