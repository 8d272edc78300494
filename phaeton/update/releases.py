"""The releases index: which releases there are, which one a channel offers (pure).

The index has the shape of GitHub's REST API `GET /repos/<owner>/<repo>/releases`: a JSON list
of releases `{tag_name, name, draft, prerelease, published_at, assets: [{name,
browser_download_url, size}]}`. A release of phaeton carries three assets (docs/update.md):

    phaeton-<version>.tar.gz         the bundle scripts/build_release.sh builds
    phaeton-<version>.tar.gz.sha256  its SHA-256 as hex (sha256sum's output is fine too)
    phaeton-<version>.tar.gz.sig     the Ed25519 signature of the tarball's bytes, raw 64 bytes

Channels: `stable` offers releases that are neither drafts nor pre-releases (GitHub's flag, or
a pre-release version such as 0.3.0b1); `beta` offers pre-releases too. Drafts never.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phaeton.update.version import Version, parse_version

CHANNELS = ("stable", "beta")


@dataclass(frozen=True)
class Asset:
    name: str
    url: str
    size: int | None          # bytes, as the index says (None: not given)


@dataclass(frozen=True)
class Release:
    version: Version
    tag: str
    draft: bool = False
    prerelease: bool = False
    published_at: str | None = None
    assets: dict[str, Asset] = field(default_factory=dict)

    @property
    def tarball_name(self) -> str:
        return f"phaeton-{self.version.text}.tar.gz"

    def in_channel(self, channel: str) -> bool:
        if self.draft:
            return False
        if channel == "beta":
            return True
        return not (self.prerelease or self.version.is_prerelease)

    def bundle_assets(self) -> tuple[Asset, Asset, Asset]:
        """The tarball, its .sha256 and its .sig; ValueError naming what is missing."""
        names = (self.tarball_name, self.tarball_name + ".sha256", self.tarball_name + ".sig")
        missing = [name for name in names if name not in self.assets]
        if missing:
            raise ValueError(f"release {self.version} lacks the asset(s) {', '.join(missing)}")
        tarball, digest, signature = (self.assets[name] for name in names)
        return tarball, digest, signature


@dataclass(frozen=True)
class Index:
    releases: list[Release]
    skipped: list[str]        # why entries were left out (unusable tag, not a mapping, ...)


def parse_index(data: Any) -> Index:
    """The releases of a decoded index; entries that cannot be a release are skipped and said
    why (a repository may have tags that are not versions). ValueError for a wrong shape."""
    if isinstance(data, dict) and "message" in data:
        raise ValueError(f"the index answered with a message instead of releases: "
                         f"{str(data['message'])[:200]}")
    if not isinstance(data, list):
        raise ValueError(f"the index is not a list of releases but a {type(data).__name__}")
    releases, skipped = [], []
    for position, entry in enumerate(data):
        try:
            releases.append(_release(entry))
        except ValueError as exc:
            skipped.append(f"entry {position + 1}: {exc}")
    return Index(releases, skipped)


def _release(entry: Any) -> Release:
    if not isinstance(entry, dict):
        raise ValueError("not a mapping")
    tag = entry.get("tag_name")
    if not isinstance(tag, str):
        raise ValueError("no tag_name")
    version = parse_version(tag)
    assets: dict[str, Asset] = {}
    for item in entry.get("assets") or []:
        if not isinstance(item, dict):
            continue
        name, url, size = item.get("name"), item.get("browser_download_url"), item.get("size")
        if isinstance(name, str) and isinstance(url, str):
            assets[name] = Asset(name, url, size if isinstance(size, int) and size >= 0
                                 else None)
    published = entry.get("published_at")
    return Release(version=version, tag=tag, draft=entry.get("draft") is True,
                   prerelease=entry.get("prerelease") is True,
                   published_at=published if isinstance(published, str) else None,
                   assets=assets)


def newest(releases: list[Release], channel: str) -> Release | None:
    """The highest version the channel offers (None: it offers none)."""
    offered = [r for r in releases if r.in_channel(channel)]
    return max(offered, key=lambda r: r.version, default=None)


@dataclass(frozen=True)
class Choice:
    """What to install: `release` (None: nothing) and the one-line reason."""

    release: Release | None
    reason: str


def choose(releases: list[Release], channel: str, running: Version | None,
           wanted: str | None = None) -> Choice:
    """The release to install: `wanted` exactly when given (any channel, never a draft, may be
    older: a deliberate downgrade), else the channel's newest when it is newer than `running`."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    if wanted is not None:
        target = parse_version(wanted)
        found = [r for r in releases if r.version == target and not r.draft]
        if not found:
            return Choice(None, f"version {target} is not in the index (drafts are never "
                                f"offered)")
        if running is not None and found[0].version == running:
            return Choice(None, f"phaeton {running} is already running")
        return Choice(found[0], f"version {target} as asked")
    best = newest(releases, channel)
    if best is None:
        return Choice(None, f"the {channel} channel offers no release")
    if running is not None and not best.version > running:
        return Choice(None, f"up to date: running {running}, the newest {channel} release is "
                            f"{best.version}")
    was = f" (running {running})" if running is not None else ""
    return Choice(best, f"phaeton {best.version} is available on the {channel} channel{was}")
