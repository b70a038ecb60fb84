"""The device controller: the single owner of the treadmill, with the safety supervisor."""
