"""The user API people subclass, shaped like Locust's, and the loading of user code."""
