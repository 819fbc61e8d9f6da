"""The 2.5D multi-view inference engine (the network is passed in as a callable)."""
