# The part of simplejpeg (a Cython module without type information) that vision uses.
import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

def decode_jpeg(
    data: Buffer,
    colorspace: str = "rgb",
    fastdct: bool = False,
    fastupsample: bool = False,
    min_height: int = 0,
    min_width: int = 0,
    min_factor: float = 1.0,
    buffer: Buffer | None = None,
    strict: bool = True,
) -> npt.NDArray[np.uint8]: ...
def decode_jpeg_header(
    data: Buffer, min_height: int = 0, min_width: int = 0, min_factor: float = 1.0
) -> tuple[int, int, str, str]: ...
