"""What a MediaConvert job writes: the ffmpeg commands of its MP4 encodes and MediaConvert's output names."""
