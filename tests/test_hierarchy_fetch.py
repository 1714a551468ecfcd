"""hcebench.hierarchy.fetch: downloading an ontology release (offline, from file:// URLs and local sockets)."""

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
from hcebench.errors import NetworkError, OntologyError
from hcebench.hierarchy.fetch import fetch_obo
from hcebench.hierarchy.ontology import load_ontology
from hcebench.network import Retry

DATA = Path(__file__).parent / "data"
A, B, C, D, E = (f"T:000000{i}" for i in range(1, 6))  # the five-node DAG of tests/data/five_node.obo
QUICK = Retry(attempts=2, timeout_s=0.5, backoff_s=0.1)


def test_fetch_obo_from_a_url(tmp_path):
    fetch_obo((DATA / "five_node.obo").as_uri(), tmp_path / "cl.obo")
    assert load_ontology(tmp_path / "cl.obo").closure([A, E]).reachability.tolist() == [[1, 1], [0, 1]]
    (tmp_path / "page.html").write_text("<html>not found</html>")
    with pytest.raises(OntologyError, match="OBO"):
        fetch_obo((tmp_path / "page.html").as_uri(), tmp_path / "bad.obo")
    assert not (tmp_path / "bad.obo").exists()


def test_a_missing_file_fails_at_once_naming_the_key_and_the_offline_fix(tmp_path):
    started = time.monotonic()
    with pytest.raises(OntologyError, match="ontology.source") as err:
        fetch_obo((tmp_path / "absent.obo").as_uri(), tmp_path / "x.obo", Retry(attempts=3, backoff_s=30))
    assert time.monotonic() - started < 5  # not transient: no retry, no 30 s backoff
    assert "bundled:v2022-09-15" in str(err.value) and "\n" not in str(err.value)


@pytest.fixture
def silent_server():
    """A local socket that accepts connections and never answers: a network that swallows requests."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_host_that_never_answers_fails_in_bounded_time_with_one_line(silent_server, tmp_path, caplog):
    url, accepted = silent_server
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="hcebench.network"), pytest.raises(NetworkError) as err:
        fetch_obo(f"{url}/cl-basic.obo", tmp_path / "cl.obo", QUICK)
    elapsed = time.monotonic() - started
    assert elapsed < QUICK.longest_s + 2  # 2 attempts of 0.5 s and a 0.1 s pause, not the OS's minutes
    assert len(accepted) == 2  # both attempts reached the host, which kept silent
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"ontology.source {url}/cl-basic.obo did not answer: no answer within 0.5 s")
    assert "2 attempt(s)" in message and "local path" in message and "bundled:v2022-09-15" in message
    assert not (tmp_path / "cl.obo").exists()
    assert ["attempt 1 of 2 failed" in r.getMessage() for r in caplog.records] == [True]


def test_a_refused_connection_is_retried_then_named(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connections are refused
    with pytest.raises(
        NetworkError, match=r"ontology.source http://127.0.0.1:\d+/cl.obo did not answer: URLError"
    ):
        fetch_obo(f"http://127.0.0.1:{port}/cl.obo", tmp_path / "cl.obo", QUICK)


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first request, then the OBO file."""

    calls = 0

    def do_GET(self):  # noqa: N802 (the http.server interface)
        type(self).calls += 1
        if type(self).calls == 1:
            self.send_error(503)
            return
        body = (DATA / "five_node.obo").read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_server_error_is_retried_and_a_404_is_not(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cl.obo"
    try:
        fetch_obo(url, tmp_path / "cl.obo", QUICK)  # 503, then the file
        assert _FlakyHandler.calls == 2
        assert load_ontology(tmp_path / "cl.obo").closure([A, B]).reachability.tolist() == [[1, 1], [0, 1]]
    finally:
        server.shutdown()
        server.server_close()

    class NotFound(http.server.BaseHTTPRequestHandler):
        calls = 0

        def do_GET(self):  # noqa: N802
            type(self).calls += 1
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(OntologyError, match="cannot download ontology.source .*404"):
            fetch_obo(f"http://127.0.0.1:{server.server_address[1]}/x.obo", tmp_path / "x.obo", QUICK)
        assert NotFound.calls == 1
    finally:
        server.shutdown()
        server.server_close()


def test_no_dns_fails_in_bounded_time_with_one_line(monkeypatch, tmp_path, caplog):
    """A machine that cannot resolve host names (no resolver, or one that answers 'no such name') is a transient
    failure like any unreachable host: retried within the bound, then one line naming the key and the offline fix."""
    looked_up = []

    def no_resolver(host, *args, **kwargs):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_resolver)
    url = "http://purl.obolibrary.org/obo/cl/releases/2022-09-15/cl-basic.obo"
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="hcebench.network"), pytest.raises(NetworkError) as err:
        fetch_obo(url, tmp_path / "cl.obo", QUICK)
    assert time.monotonic() - started < QUICK.longest_s + 2
    assert looked_up == ["purl.obolibrary.org"] * QUICK.attempts  # every attempt asked, none got an address
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"ontology.source {url} did not answer: URLError")
    assert "Name or service not known" in message and "bundled:v2022-09-15" in message
    assert not (tmp_path / "cl.obo").exists()


def test_a_pinned_checksum_refuses_any_other_file(tmp_path):
    import hashlib

    source = DATA / "five_node.obo"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert fetch_obo(source.as_uri(), tmp_path / "cl.obo", sha256=digest) == digest
    altered = tmp_path / "altered.obo"
    altered.write_bytes(source.read_bytes().replace(b"[Term]", b"[Term]\n", 1))
    with pytest.raises(
        OntologyError, match=rf"delivered a file with SHA-256 [0-9a-f]{{64}}, not the {digest} pinned"
    ):
        fetch_obo(altered.as_uri(), tmp_path / "bad.obo", sha256=digest)
    assert not (tmp_path / "bad.obo").exists()


def test_a_plain_http_ontology_is_refused_while_planning():
    import yaml
    from hcebench.config import load_config
    from hcebench.errors import ConfigError

    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    config["ontology"] = {"source": "http://purl.obolibrary.org/obo/cl/cl-basic.obo"}
    with pytest.raises(ConfigError, match=r"ontology.source .* is plain http: a file altered in transit"):
        load_config(config)
    config["ontology"] = {
        "source": "https://purl.obolibrary.org/obo/cl/cl-basic.obo",
        "sha256": "not-a-digest",
    }
    with pytest.raises(ConfigError, match=r"ontology.sha256"):
        load_config(config)


def test_the_paper_config_pins_the_checksum_of_the_release_it_fetches():
    import hashlib

    import yaml
    from hcebench.hierarchy.ontology import bundled_obo_path

    paper = yaml.safe_load((Path(__file__).parents[1] / "config" / "paper.yaml").read_text())["ontology"]
    assert paper["source"].startswith("https://") and "v2022-09-15/cl-basic.obo" in paper["source"]
    assert hashlib.sha256(bundled_obo_path("v2022-09-15").read_bytes()).hexdigest() == paper["sha256"]
