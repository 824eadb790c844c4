"""What a MediaConvert job writes: the ffmpeg commands, HLS playlists and MediaConvert's output names."""
