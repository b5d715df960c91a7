"""The optimization as a film: frames written to disk as they come, then an animated GIF.

    recorder = FrameRecorder(every=10)           # frames in a temporary folder
    result = stylize(photo, painting, callback=recorder)
    recorder.save_gif("run.gif")                 # assembled from the files on disk

Each frame is shrunk to `max_side_px` before it is written, and only file names are kept in
memory, so a long run at a large size never holds its frames at full size. (While it
encodes the GIF, Pillow keeps the small frames: frames × width × height bytes.)
"""

import shutil
import tempfile
from pathlib import Path

from PIL import Image

from .errors import StyleTransferError
from .images import check_output_path, resize_long_edge, tensor_to_image, write_atomically

FRAME_PATTERN = "frame_{:05d}.png"


def check_gif_path(path, overwrite=False):
    """Raise a clear error unless a GIF can be written at `path`; return it as a Path."""
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise StyleTransferError(f"cannot write {path} as a GIF: give a file name ending in .gif")
    return check_output_path(path, overwrite) / path.name


class FrameRecorder:
    """A progress callback that saves every `every`-th step's picture as a PNG in `folder`.

    folder:      where the frames go (created with the first frame if missing, so that a run
                 refused before its first step leaves nothing behind; must hold no frames yet).
                 None: a temporary folder, removed by `cleanup()` or after `save_gif`.
    every:       record a frame when progress.step is a multiple of this (and the last step).
    max_side_px: frames are shrunk so that their long edge is at most this.
    Frames of different sizes (a coarse-to-fine run) are all scaled to the last frame's
    size when the GIF is made.
    """

    def __init__(self, folder=None, every=1, max_side_px=256):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise StyleTransferError(f"every must be a positive whole number of steps, got {every!r}")
        if isinstance(max_side_px, bool) or not isinstance(max_side_px, int) or max_side_px < 8:
            raise StyleTransferError(f"max_side_px must be a whole number ≥ 8, got {max_side_px!r}")
        self.every, self.max_side_px = every, max_side_px
        self._temporary = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="nst-frames-")) if folder is None else Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise StyleTransferError(f"cannot write frames to {self.folder}: it is a file; give a folder")
        if any(self.folder.glob("frame_*.png")):
            raise StyleTransferError(f"{self.folder} already holds frames: choose an empty folder")
        self.frames = []  #: the paths of the frames written so far

    def __call__(self, progress):
        if progress.step % self.every == 0 or progress.step == progress.steps:
            self.add(progress.image)

    def add(self, image):
        """Write one frame (an image tensor, RGB in [0, 1], or a PIL image); return its path."""
        pil = image if isinstance(image, Image.Image) else tensor_to_image(image.detach().float().cpu())
        if max(pil.size) > self.max_side_px:
            pil = resize_long_edge(pil, self.max_side_px)
        if not self.frames:
            self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / FRAME_PATTERN.format(len(self.frames))
        pil.save(path)
        self.frames.append(path)
        return path

    def save_gif(self, path, duration_ms=80, hold_last_ms=1500, overwrite=False):
        """Assemble the frames on disk into an animated GIF at `path` (looping); return the path.

        Each frame shows for `duration_ms`, the last one for `hold_last_ms`. A temporary
        frame folder is removed afterwards.
        """
        path = check_gif_path(path, overwrite)
        if not self.frames:
            raise StyleTransferError("no frames were recorded: pass the recorder as the run's callback")
        folder = path.parent
        with Image.open(self.frames[-1]) as last:
            size = last.size

        def frame(p):
            with Image.open(p) as im:
                im = im.convert("RGB")
                return im if im.size == size else im.resize(size, Image.LANCZOS)

        durations = [duration_ms] * (len(self.frames) - 1) + [hold_last_ms]
        write_atomically(path, lambda f: frame(self.frames[0]).save(
            f, format="GIF", save_all=True, loop=0, duration=durations,
            append_images=(frame(p) for p in self.frames[1:])), folder)
        if self._temporary:
            self.cleanup()
        return path

    def cleanup(self):
        """Remove the frame folder if the recorder made it (a folder you named is kept)."""
        if self._temporary and self.folder.exists():
            shutil.rmtree(self.folder)
