"""People, as the platform knows them: a Firebase uid linked to an internal id, nothing more."""
