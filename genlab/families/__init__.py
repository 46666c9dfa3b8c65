"""Each family's math: an object that owns its loss and its sampling around plain networks, trained by any loop."""
