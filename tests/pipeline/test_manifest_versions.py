"""Issue 22: the manifest's versions read from the metadata header only
(``pipeline/_manifest._version``) equal ``importlib.metadata``'s (the reference) for every
distribution installed in this environment, and the manifest's dependency versions too."""

from __future__ import annotations

from importlib import metadata

from peerstats.pipeline import _manifest


def test_header_versions_equal_importlib_metadata_for_every_installed_distribution():
    dists = list(metadata.distributions())
    assert len(dists) > 20
    for dist in dists:
        assert _manifest._version(dist) == dist.version, dist.metadata["Name"]


def test_manifest_versions_equal_importlib_metadata():
    versions = _manifest._versions()
    assert set(versions) == {"peerstats", *_manifest.DEPENDENCIES}
    for name, version in versions.items():
        assert version == metadata.version(name)
