"""The images function: one unit of an image job per record (a resized, watermarked, metadata-free derivative, or the
image's metadata), fed by the `images` queue, with Pillow."""
