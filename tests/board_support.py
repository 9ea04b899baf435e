"""What a run leaves for people to look at, read back as they would see it: TensorBoard's
own reader for the event files, the PNG's pixels for the pictures."""
import numpy as np


def read_scalars(folder) -> dict:
    """{tag: [(step, value), ...]} of one TensorBoard run folder, read by TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
            for tag in acc.Tags()['scalars']}


def picture(path, colour='tab:blue'):
    """(width, height, distinct colours, pixels of ``colour``) of a PNG."""
    import matplotlib.colors as mcolors
    import matplotlib.image as mpimg
    pixels = mpimg.imread(path)[..., :3]
    height, width = pixels.shape[:2]
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    near = np.abs(pixels - np.array(mcolors.to_rgb(colour))).max(axis=-1) < 0.08
    return width, height, colours, int(near.sum())


def assert_drawn(path, size=(1100, 400), colour='tab:blue', data_pixels=1000):
    """The picture has its size and shows data: blank axes have a few hundred colours but
    few pixels of the data's colour (the axis label's ~350); a curve or histogram in it
    has thousands."""
    width, height, colours, drawn = picture(path, colour)
    assert (width, height) == size, (width, height)
    assert colours > 100 and drawn > data_pixels, (colours, drawn)
