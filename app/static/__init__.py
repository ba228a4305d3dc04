"""Static files of the browser demo page (a package so that setuptools ships them as package data)."""
