"""Curation: source lists → downloaded, probed, normalised videos → identity-tagged clip dataset."""
