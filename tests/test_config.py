"""Configuration: defaults, then the TOML file, then XDS_* variables, then flags."""
from __future__ import annotations

from pathlib import Path

import pytest

from config import DEFAULT_REPOSITORY_UNIQUE_ID, load_settings


def test_defaults_are_the_embedded_store(tmp_path):
    s = load_settings(environ={}, data_dir=str(tmp_path))
    assert s.repository_unique_id == DEFAULT_REPOSITORY_UNIQUE_ID
    assert s.effective_database_url() == f"sqlite:///{(tmp_path / 'registry.db').resolve()}"
    assert s.max_request_bytes == 100 * 1024 * 1024 and s.check_patient_ids is True


def test_file_then_environment_then_flags(tmp_path):
    cfg = tmp_path / "xds.toml"
    cfg.write_text('[xds]\nrepository-unique-id = "1.2.3"\nmax_request_bytes = 1000\ncheck_patient_ids = false\n'
                   'audit_forward = ["udp://127.0.0.1:514"]\nvalue_sets = { typeCode = "types.xml" }\n')
    s = load_settings(cfg, environ={})
    assert (s.repository_unique_id, s.max_request_bytes, s.check_patient_ids) == ("1.2.3", 1000, False)
    assert s.audit_forward == ["udp://127.0.0.1:514"] and s.value_sets == {"typeCode": ["types.xml"]}
    s = load_settings(cfg, environ={"XDS_REPOSITORY_UNIQUE_ID": "4.5.6", "XDS_AUDIT_FORWARD": "udp://a:1,tls://b:2"})
    assert s.repository_unique_id == "4.5.6" and s.audit_forward == ["udp://a:1", "tls://b:2"]
    s = load_settings(cfg, environ={"XDS_REPOSITORY_UNIQUE_ID": "4.5.6"}, repository_unique_id="7.8.9",
                      max_request_bytes=None)
    assert s.repository_unique_id == "7.8.9" and s.max_request_bytes == 1000


def test_config_file_from_environment(tmp_path):
    cfg = tmp_path / "xds.toml"
    cfg.write_text('home_community_id = "urn:oid:1.2.3"\n')
    assert load_settings(environ={"XDS_CONFIG": str(cfg)}).home_community_id == "urn:oid:1.2.3"


def test_unknown_setting_is_an_error(tmp_path):
    cfg = tmp_path / "xds.toml"
    cfg.write_text('no_such_setting = 1\n')
    with pytest.raises(ValueError, match="no_such_setting"):
        load_settings(cfg, environ={})


def test_data_dir_and_database_url_from_environment():
    s = load_settings(environ={"XDS_DATA_DIR": "/srv/xds", "XDS_DATABASE_URL": "postgresql+psycopg://h/db"})
    assert s.data_dir == Path("/srv/xds") and s.effective_database_url() == "postgresql+psycopg://h/db"


def test_the_remote_registry_has_its_own_variable_not_the_clients_registry_url():
    """XDS_REGISTRY_URL is the client's registry endpoint: a server whose users export it must not
    take it for the remote registry its repository registers with (issue 20: one user's data split
    across two stores). The server's is XDS_REMOTE_REGISTRY_URL."""
    remote = "https://registry.example.org/registry"
    assert load_settings(environ={"XDS_REMOTE_REGISTRY_URL": remote}).remote_registry_url == remote
    assert load_settings(environ={"XDS_REGISTRY_URL": remote}).remote_registry_url == ""


def test_the_old_registry_url_setting_is_refused_with_its_new_name(tmp_path):
    cfg = tmp_path / "xds.toml"
    cfg.write_text('[xds]\nregistry_url = "https://registry.example.org/registry"\n')
    with pytest.raises(ValueError, match=r"'registry_url' .* is now 'remote_registry_url'"):
        load_settings(cfg, environ={})
    cfg.write_text('[xds]\nremote-registry-url = "https://registry.example.org/registry"\n')
    assert load_settings(cfg, environ={}).remote_registry_url == "https://registry.example.org/registry"
