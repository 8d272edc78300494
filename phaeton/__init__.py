"""phaeton: EV charger controller for Victron Venus OS."""
__version__ = "0.1.0"
