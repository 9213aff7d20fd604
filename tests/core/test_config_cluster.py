"""The settings loader and a Redis Cluster store: the URLs it takes, VERIFIER_MIN_REPLICAS."""

from __future__ import annotations

import pytest

from verifier.config import AdminSettings, load, load_settings
from verifier.errors import ConfigError

REQUIRED = {"VERIFIER_TRUST_LIST": "t", "VERIFIER_ROOT_KEY": "k"}
CLUSTER = "redis+cluster://10.0.1.11:6379,10.0.1.12:6379"


@pytest.mark.parametrize(
    "url",
    [
        CLUSTER,  # two seeds
        "redis+cluster://verifier:s3cret@10.0.1.11:6379",  # ACL user, one seed
        "rediss+cluster://redis-a.internal:6380,redis-b.internal:6380/0",  # TLS, database 0
    ],
)
def test_serve_and_admin_take_cluster_urls(url):
    assert load_settings({**REQUIRED, "VERIFIER_STORE": url}).store == url
    assert load(AdminSettings, {"VERIFIER_STORE": url}).store == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://", "at least one HOST:PORT"),  # no seed
        ("redis+cluster://u:hunter2@h:x", "expected HOST:PORT"),  # port not a number
        ("redis+cluster://h:1/2", "database 0 only"),  # a cluster has no database 2
        ("cluster://h:1", "expected redis://"),  # unknown scheme
    ],
)
def test_a_bad_cluster_url_is_one_line_without_the_url(url, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_settings({**REQUIRED, "VERIFIER_STORE": url})
    assert str(err.value).startswith("VERIFIER_STORE: ")
    assert "hunter2" not in str(err.value)


def test_min_replicas_defaults_to_zero_and_needs_a_cluster():
    assert load_settings({**REQUIRED, "VERIFIER_STORE": CLUSTER}).min_replicas == 0
    env = {**REQUIRED, "VERIFIER_STORE": CLUSTER, "VERIFIER_MIN_REPLICAS": "1"}
    assert load_settings(env).min_replicas == 1
    with pytest.raises(ConfigError, match="^VERIFIER_MIN_REPLICAS: .*redis\\+cluster://"):
        load_settings({**env, "VERIFIER_STORE": "redis://h:6379/0"})
    with pytest.raises(ConfigError, match="^VERIFIER_MIN_REPLICAS: must be between 0 and 16"):
        load_settings({**env, "VERIFIER_MIN_REPLICAS": "-1"})


def test_tls_files_go_with_rediss_cluster_only():
    env = {**REQUIRED, "VERIFIER_REDIS_CA_FILE": "/etc/ca.pem"}
    tls = "rediss+cluster://redis-a.internal:6380"
    assert load_settings({**env, "VERIFIER_STORE": tls}).redis_ca_file == "/etc/ca.pem"
    with pytest.raises(ConfigError, match="^VERIFIER_REDIS_CA_FILE: .*not TLS"):
        load_settings({**env, "VERIFIER_STORE": CLUSTER})
