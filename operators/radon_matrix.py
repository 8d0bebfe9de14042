"""The Radon transform's sparse system matrix (CPU), shrunk by the symmetries of the pixel grid.

A pixel grid centred on the rotation centre is mapped onto itself by the rotations and
reflections of the square (8 of them; 4 when ``H != W``), and bilinear interpolation commutes with
them. So the line integral of an image ``x`` along a ray ``r`` equals the integral of ``x``
transformed by ``g`` along the ray ``g(r)``. Uniformly spaced views are mostly such images of one
another: every parallel view over [0, pi) is a turned or mirrored copy of one in [0, pi/4], and its
detectors pair up under the half turn; a fan over [0, 2 pi) reduces the same way. Only one ray of
each orbit is stored (about an eighth of the rows) and applied to the transformed copies of the
image in a single sparse product with one column per transform. That product streams an eighth of
the matrix, which is what bounds its speed, and the matrix takes an eighth of the memory.

Symmetries are found numerically (each ray's midpoint and direction, mapped and matched back to the
rays of the geometry), so any angle set gets whatever reduction it allows, and none is assumed.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .radon import Radon

# The rotations and reflections of the square as 2x2 matrices acting on world (x, y).
_SQUARE_SYMMETRIES = torch.tensor([
    [[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]],
    [[-1, 0], [0, 1]], [[1, 0], [0, -1]], [[0, 1], [1, 0]], [[0, -1], [-1, 0]]],
    dtype=torch.float64)
_MATCH_TOLERANCE = 1e-6  # pixels: rays closer than this in midpoint and direction are the same
_QUANTUM = 2.0 ** -16  # pixels: the grid on which ray descriptors are hashed before matching


class RayMatrix:
    """``A`` and ``A^T`` of a :class:`Radon` as CSR matrices over one ray per symmetry orbit.

    ``project(planes)`` maps ``(P, H*W)`` to ``(P, n_rays)``; ``backproject`` is its exact
    transpose. Build with :func:`build_ray_matrix`.
    """

    def __init__(self, matrix: torch.Tensor, matrix_t: torch.Tensor, pixel_maps: torch.Tensor,
                 ray_source: torch.Tensor) -> None:
        self.matrix, self.matrix_t = matrix, matrix_t
        self.pixel_maps = pixel_maps  # (T, H*W): copy t of x is x.flatten()[pixel_maps[t]]
        self.n_copies = pixel_maps.shape[0]
        inverse = torch.empty_like(pixel_maps)
        inverse.scatter_(1, pixel_maps, torch.arange(pixel_maps.shape[1]).expand_as(pixel_maps))
        # position in the flattened (H*W, T) back-projection of each pixel's share from copy t
        self._unmap = inverse * self.n_copies + torch.arange(self.n_copies)[:, None]
        self.ray_source = ray_source  # (n_rays,): row * T + copy of every ray of the geometry

    @property
    def nbytes(self) -> int:
        return sum(m.values().nbytes + m.col_indices().nbytes + m.crow_indices().nbytes
                   for m in (self.matrix, self.matrix_t))

    def project(self, planes: torch.Tensor) -> torch.Tensor:
        """``A`` applied to every row of ``planes`` ``(P, H*W)``, giving ``(P, n_rays)``."""
        p = planes.shape[0]
        copies = planes[:, self.pixel_maps].permute(2, 1, 0).reshape(-1, self.n_copies * p)
        rows = (self.matrix @ copies).view(-1, p)
        return rows[self.ray_source].T

    def backproject(self, sino: torch.Tensor) -> torch.Tensor:
        """``A^T`` applied to every row of ``sino`` ``(P, n_rays)``, giving ``(P, H*W)``."""
        p = sino.shape[0]
        rows = sino.new_zeros(self.matrix.shape[0] * self.n_copies, p)
        rows.index_add_(0, self.ray_source, sino.T)  # index_add: repeated rays add up
        shares = (self.matrix_t @ rows.view(self.matrix.shape[0], -1)).view(-1, p)
        return shares[self._unmap].sum(0).T


def build_ray_matrix(op: Radon, dtype: torch.dtype, max_nnz: int) -> RayMatrix | None:
    """The symmetry-reduced matrices of ``op`` in ``dtype``, or None when they would hold more than
    ``max_nnz`` non-zeros each (projected from the first chunk of views, so a doomed build stops
    early)."""
    symmetries, pixel_maps = _grid_symmetries(op.image_shape)
    stored, transform = _orbit_representatives(op, symmetries)
    used, copy_of = torch.unique(transform, return_inverse=True)
    inverses = _inverse_indices(symmetries)
    pixel_maps = pixel_maps[inverses[used]]  # ray i sees x through the inverse of its transform
    rows, row_of = torch.unique(stored, return_inverse=True)
    built = _weights(op, rows, dtype, max_nnz)
    if built is None:
        return None
    row_index, col_index, value = built
    shape = (len(rows), op.image_shape[0] * op.image_shape[1])
    order = torch.argsort(col_index, stable=True)
    return RayMatrix(_csr(row_index, col_index, value, shape),
                     _csr(col_index[order], row_index[order], value[order], shape[::-1]),
                     pixel_maps, row_of * len(used) + copy_of)


def _grid_symmetries(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The square's symmetries that map the ``(H, W)`` pixel grid onto itself, and for each the
    flat index of the pixel at ``g(p)`` for every pixel ``p``."""
    h, w = shape
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    world = torch.stack((cols - (w - 1) / 2, (h - 1) / 2 - rows), -1).reshape(-1, 2)
    kept, maps = [], []
    for g in _SQUARE_SYMMETRIES:
        x, y = (world @ g.T).unbind(-1)
        col, row = x + (w - 1) / 2, (h - 1) / 2 - y
        if bool(((col >= 0) & (col <= w - 1) & (row >= 0) & (row <= h - 1)).all()):
            kept.append(g)
            maps.append((row.round() * w + col.round()).long())
    return torch.stack(kept), torch.stack(maps)


def _inverse_indices(symmetries: torch.Tensor) -> torch.Tensor:
    """For each symmetry, the index of its inverse (its transpose) in the same list."""
    same = (symmetries.transpose(1, 2)[:, None] == symmetries[None]).flatten(2).all(-1)
    return same.float().argmax(1)


def _orbit_representatives(op: Radon, symmetries: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """For every ray ``i``: the stored ray ``g(i)`` (the lowest-numbered ray its symmetries reach)
    and the index of that ``g``."""
    mid, direction = (t.reshape(-1, 2) for t in op._rays(op.angles, torch.float64))
    n = mid.shape[0]
    mapped_mid = torch.einsum("gab,nb->gna", symmetries, mid)
    mapped_dir = torch.einsum("gab,nb->gna", symmetries, direction)
    keys = torch.cat([torch.cat((mid, direction), -1), torch.cat((mid, -direction), -1),
                      torch.cat((mapped_mid, mapped_dir), -1).reshape(-1, 4)])
    _, ids = torch.unique(torch.round(keys / _QUANTUM).long(), dim=0, return_inverse=True)
    table = torch.full((int(ids.max()) + 1,), -1, dtype=torch.long)
    table[ids[:2 * n]] = torch.arange(n).repeat(2)
    match = table[ids[2 * n:]].view(len(symmetries), n)
    found = match.clamp(min=0)
    close = ((mapped_mid - mid[found]).abs().amax(-1) < _MATCH_TOLERANCE) & torch.minimum(
        (mapped_dir - direction[found]).abs().amax(-1),
        (mapped_dir + direction[found]).abs().amax(-1)).lt(_MATCH_TOLERANCE)
    candidates = torch.where((match >= 0) & close, match, n)
    candidates[0] = torch.arange(n)  # the identity always maps a ray onto itself
    return candidates.min(0)


def _weights(op: Radon, rays: torch.Tensor, dtype: torch.dtype, max_nnz: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Row, column and value of every bilinear ray weight of the sorted ``rays`` (row ``k`` of
    the result is ``rays[k]``), or None past ``max_nnz``. Only the stored rays are sampled."""
    h, w = op.image_shape
    mid, direction = (t.reshape(-1, 2)[rays] for t in op._rays(op.angles, torch.float64))
    out, nnz = ([], [], []), 0
    per_ray = op.n_samples * 8 * 24  # float64 samples, corners, weights and masks
    size = max(1, op.chunk_bytes // per_ray)
    for first in range(0, len(rays), size):
        grid = op._samples_along(mid[first:first + size], direction[first:first + size])
        col = (grid[..., 0] + 1) * ((w - 1) / 2)  # grid_sample's align_corners=True units
        row = (grid[..., 1] + 1) * ((h - 1) / 2)
        c0, r0 = col.floor(), row.floor()
        fc, fr = col - c0, row - r0
        ray_rows = torch.arange(first, first + len(grid))[:, None, None]
        corner_rows = torch.stack((r0, r0, r0 + 1, r0 + 1), -1)
        corner_cols = torch.stack((c0, c0 + 1, c0, c0 + 1), -1)
        weights = torch.stack(((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc), -1)
        keep = ((corner_rows >= 0) & (corner_rows < h) & (corner_cols >= 0)
                & (corner_cols < w) & (weights != 0))
        nnz += int(keep.sum())
        if nnz * len(rays) > max_nnz * (first + len(grid)):  # projected from the rays so far
            return None
        out[0].append(ray_rows.expand_as(keep)[keep].to(torch.int32))
        out[1].append((corner_rows[keep] * w + corner_cols[keep]).to(torch.int32))
        out[2].append((weights[keep] * (op.step * op.pixel_size)).to(dtype))
    return tuple(torch.cat(parts) for parts in out)


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
         ) -> torch.Tensor:
    """A CSR matrix from entries sorted by row (repeated entries add up in products)."""
    crow = torch.zeros(shape[0] + 1, dtype=torch.int32)
    crow[1:] = torch.bincount(rows, minlength=shape[0]).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, values, shape)
