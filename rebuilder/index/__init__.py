"""The package index: listing a release's files and downloading them, hash-checked."""
