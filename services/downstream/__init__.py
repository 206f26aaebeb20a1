"""The profile store the leaky and fixed services call over HTTP."""
