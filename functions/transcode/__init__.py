"""The Lambda transcoder: one function per rendition, fed by its `transcode-{name}` queue, encoding with ffmpeg."""
