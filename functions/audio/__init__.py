"""The audio function: each record one unit of an audio upload (a loudness-normalised AAC rendition or a waveform)."""
