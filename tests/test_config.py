import argparse

import pytest
from conftest import ROOT

from itinerary import config as cfg
from itinerary.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cfg.add_arguments(parser)
    return parser.parse_args(argv)


def test_it_defaults_to_sqlite_on_loopback():
    config = cfg.load(parse(), {})
    assert (config.dsn.driver, config.host, config.port) == ("sqlite", "127.0.0.1", 8080)
    assert config.loopback


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path):
    file = tmp_path / "it.toml"
    file.write_text('loop_interval = "3s"\ngrace_period = "40s"\nlookahead_window = "20m"\n')
    env = {"ITINERARY_GRACE_PERIOD": "50s", "ITINERARY_LOOP_INTERVAL": "2s"}
    config = cfg.load(parse("--config", str(file), "--loop-interval", "1500ms"), env)
    assert config.loop_interval == 1.5  # flag
    assert config.grace_period == 50  # environment
    assert config.lookahead_window == 1200  # file
    assert config.pre_schedule_interval == 10  # default


def test_itinerary_variables_beat_procfile_ones():
    env = {"DATABASE_URL": "postgres://a@h/x", "ITINERARY_DB_DSN": "mysql://b@h/y", "PORT": "9"}
    config = cfg.load(parse(), env)
    assert config.dsn.driver == "mysql"
    assert config.port == 9


def test_it_reads_yaml_files(tmp_path):
    file = tmp_path / "it.yaml"
    file.write_text("port: 9999\nlog-format: json\n")
    config = cfg.load(parse("--config", str(file)), {})
    assert (config.port, config.log_format) == (9999, "json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nope = 1\n", "unknown settings nope"),
        ("port = [\n", "is not valid"),
        ("port = 'x'\n", "port in the config file"),
    ],
)
def test_it_names_the_bad_file_setting(tmp_path, content, message):
    file = tmp_path / "it.toml"
    file.write_text(content)
    with pytest.raises(ConfigError, match=message):
        cfg.load(parse("--config", str(file)), {})


def test_it_never_shows_secrets():
    config = cfg.load(parse("--db-dsn", "mysql://root:pw@h/db", "--kube-token", "abc"), {})
    public = str(config.public())
    assert "pw" not in public.replace("mysql", "") and "abc" not in public


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    for setting in cfg.SETTINGS:
        assert f"`{setting.flag}`" in readme, setting.flag
