from datetime import UTC, datetime

import pytest

from turnout import bench

HEY_REPORT = """
Summary:
  Total:\t12.0034 secs
  Slowest:\t0.2101 secs
  Requests/sec:\t99.8

Status code distribution:
  [200]\t1190 responses
  [503]\t5 responses

Error distribution:
  [3]\tGet "http://10.231.4.2:80/version": EOF
  [2]\tGet "http://10.231.4.2:80/version": read tcp 10.231.4.1:5->10.231.4.2:80: \
connection reset by peer
"""


def test_describe_and_empty_sample():
    assert bench.describe([3, 1, 2]) == {"n": 3, "min": 1.0, "median": 2.0, "mean": 2.0,
                                         "max": 3.0}
    assert bench.describe([])["median"] is None


def test_ratio_handles_missing_and_zero():
    assert bench.ratio(3, 2) == 1.5
    assert bench.ratio(None, 2) is None
    assert bench.ratio(1, 0) is None


def test_flip_latency_is_the_last_old_response_after_the_command():
    samples = [(0.5, False), (1.01, False), (1.03, True), (1.02, False), (1.05, True),
               (1.06, True)]
    assert bench.flip_latency_s(samples, 1.0) == pytest.approx(0.02)


def test_flip_latency_zero_when_every_later_response_is_new_and_none_without_one():
    assert bench.flip_latency_s([(0.9, False), (1.1, True)], 1.0) == 0.0
    assert bench.flip_latency_s([(1.1, False)], 1.0) is None
    assert bench.flip_latency_s([(1.1, True), (1.2, False)], 1.0) is None


def test_parse_hey_counts_statuses_and_errors():
    result = bench.parse_hey(HEY_REPORT, rate_rps=100)
    assert result.status == {"200": 1190, "503": 5}
    assert result.errors == {"EOF": 3, "connection reset by peer": 2}
    assert result.requests == 1200 and result.failed == 10
    assert result.seconds == pytest.approx(12.0034)
    assert result.as_dict()["failed"] == 10


def test_parse_hey_clean_run_has_no_failures():
    text = "Summary:\n  Total:\t2.0 secs\n\nStatus code distribution:\n  [200]\t200 responses\n"
    result = bench.parse_hey(text)
    assert result.failed == 0 and result.requests == 200


def test_hey_argv_is_a_fixed_bounded_rate():
    argv = bench.hey_argv("http://10.0.0.2:80/version", 100, 4, 60)
    assert argv == ["hey", "-z", "60s", "-c", "4", "-q", "25", "-t", "5",
                    "http://10.0.0.2:80/version"]
    with pytest.raises(ValueError):
        bench.hey_argv("http://x/", 2, 4, 60)


def test_top_tasks_takes_parallel_hosts_as_one_span_and_adds_separate_runs():
    records = [{"task": "a", "host": "h1", "start": 0.0, "end": 2.0},
               {"task": "a", "host": "h2", "start": 0.5, "end": 3.0},
               {"task": "b", "host": "h1", "start": 3.0, "end": 3.5},
               {"task": "b", "host": "h1", "start": 10.0, "end": 10.25}]
    assert bench.top_tasks(records) == [{"task": "a", "seconds": 3.0, "hosts": 2, "runs": 2},
                                        {"task": "b", "seconds": 0.75, "hosts": 1, "runs": 2}]
    assert bench.profile_total(records) == 10.25
    assert bench.profile_total([]) == 0.0


def _results(**parts):
    data = bench.new_results(datetime(2026, 11, 22, tzinfo=UTC), False, list(parts), [1, 10],
                             {"cpus": 2, "loadavg_start": [1, 1, 1]})
    data.update(parts)
    data["finished_at"] = "2026-11-22T01:00:00Z"
    return data


FULL = _results(
    deploy_scaling=[{"hosts_per_pool": 1, "first_deploy_s": 30, "deploy_s": 20.0, "rc": 0},
                    {"hosts_per_pool": 10, "first_deploy_s": 50, "deploy_s": 28.0, "rc": 0}],
    flip={"api_ms": bench.describe([2, 3]), "client_ms": bench.describe([20, 40]), "failed": 0},
    rollback={"invoke_s": bench.describe([9.0]), "traffic_moved_s": bench.describe([1.2, 1.8]),
              "profile_top": [{"task": "x", "seconds": 1}]},
    load={"deploy": {"seconds": 30.0, "load": {"requests": 3000, "failed": 0}},
          "rollback": {"seconds": 9.0, "load": {"requests": 900, "failed": 0}}},
    overhead={"invoke_s": 33.0, "playbook_s": 30.0},
    baselines={"inplace": {"seconds": 12.0, "load": {"requests": 1200, "failed": 40}},
               "rolling": {"seconds": 120.0, "load": {"requests": 12000, "failed": 0}}},
)


def test_derived_ratios():
    ratios = bench.derived(FULL)
    assert ratios["scaling_ratio"] == 1.4
    assert ratios["rolling_over_turnout"] == 4.0
    assert ratios["inplace_over_turnout"] == 0.4
    assert ratios["invoke_over_playbook"] == 1.1 and ratios["invoke_overhead_s"] == 3.0


def test_targets_met_and_missed():
    met = {t.name.split(" (")[0]: t.met for t in bench.evaluate_targets(FULL)}
    assert met["zero failed requests"] is True
    assert met["flip latency"] is True  # median 30 ms
    assert met["rollback wall time"] is False  # 9 s > 2 s
    assert met["rollback: traffic on the old pool after the command's start"] is True  # 1.5 s
    assert met["deploy 10+10 vs 1+1"] is True
    assert met["serial rolling update time / turnout deploy time"] is True


def test_traffic_moved_target_is_missed_above_one_and_a_half_seconds():
    data = _results(rollback={"invoke_s": bench.describe([3.0]),
                              "traffic_moved_s": bench.describe([1.6])})
    (target,) = [t for t in bench.evaluate_targets(data) if t.name.startswith("rollback: traffic")]
    assert (target.goal, target.measured, target.met) == ("<= 1.5 s", "1.6 s", False)
    assert "traffic on the old pool" in bench.render_markdown(data)


def test_seconds_after_reads_a_manifest_time_against_an_epoch_start():
    start = datetime(2026, 11, 22, 14, 0, 0, tzinfo=UTC).timestamp()
    assert bench.seconds_after(start, "2026-11-22T14:00:01.234Z") == 1.234
    assert bench.seconds_after(start + 0.5, "2026-11-22T14:00:01.234+00:00") == 0.734
    assert bench.seconds_after(start, None) is None
    with pytest.raises(ValueError):
        bench.seconds_after(start, "2026-11-22T14:00:01")  # no zone: ambiguous


def test_targets_not_measured_are_none():
    assert all(t.met is None for t in bench.evaluate_targets(_results()))


def test_failed_requests_break_the_zero_target():
    data = _results(load={"deploy": {"seconds": 1, "load": {"requests": 10, "failed": 1}},
                          "rollback": {"seconds": 1, "load": {"requests": 10, "failed": 0}}})
    assert bench.evaluate_targets(data)[0].met is False


def test_validate_results():
    assert bench.validate_results(FULL) == []
    broken = dict(FULL, schema=0, parts=["flip", "nope", "tuning"])
    problems = bench.validate_results(broken)
    assert any("schema" in p for p in problems)
    assert any("nope" in p for p in problems)
    assert any("tuning" in p for p in problems)
    assert bench.validate_results([]) == ["results are not a mapping"]
    failed_row = dict(FULL, deploy_scaling=[{"hosts_per_pool": 1, "deploy_s": None, "rc": 1}])
    assert bench.validate_results(failed_row)


def test_markdown_has_targets_and_each_part():
    text = bench.render_markdown(FULL)
    assert "| rollback wall time (invoke rollback) | <= 2 s | 9 s | **no** |" in text
    assert "| 10 | - | 28 | - | - |" in text
    assert "serial rolling update | 120 | 12000 | 0 |" in text
    assert "naive in-place upgrade | 12 | 1200 | 40 |" in text
    assert "1.1x" in text


def test_plot_data():
    data = bench.plot_data(FULL)
    assert data["scaling"] == {"hosts": [1, 10], "seconds": [20.0, 28.0]}
    assert [m["label"] for m in data["methods"]] == ["turnout", "in-place", "rolling serial:1"]
    assert data["methods"][1]["failed"] == 40


def test_results_name():
    when = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    assert bench.results_name(when, False) == "2026-11-22"
    assert bench.results_name(when, True) == "2026-11-22-quick"


def test_each_bench_step_done_prints_one_plain_line(capsys):
    from turnout import bench_runner

    bench_runner._check("invoke deploy 1.0 to b2", bench_runner.Timed(12.5, 0, "out"))
    assert capsys.readouterr().err == "bench:   invoke deploy 1.0 to b2: 12.5s\n"
    with pytest.raises(RuntimeError, match="provision failed"):
        bench_runner._check("provision", bench_runner.Timed(3.0, 2, "boom"))
    assert capsys.readouterr().err == ""


# --- the cost model (issue 15) --------------------------------------------------------------

def test_profile_rusage_record_is_the_main_process_cpu_and_not_a_task():
    records = [{"task": "a", "host": "green1", "start": 0.0, "end": 1.0, "status": "ok"},
               {"rusage": {"user_s": 2.5, "system_s": 0.25}}]
    assert bench.main_process_cpu_s(records) == 2.75
    assert bench.main_process_cpu_s(records[:1]) is None
    assert bench.profile_total(records) == 1.0 and len(bench.top_tasks(records)) == 1


def test_per_host_tasks_counts_what_ran_on_each_target_host_not_skips():
    records = [{"task": t, "host": h, "start": 0, "end": 1, "status": s}
               for t, h, s in (("a", "green1", "ok"), ("b", "green1", "changed"),
                               ("c", "green1", "skipped"), ("a", "green2", "failed"),
                               ("a", "lb1", "ok"))]
    assert bench.per_host_tasks(records, ["green1", "green2", "green3"]) == {
        "green1": 2, "green2": 1, "green3": 0}


def test_per_host_ssh_finds_the_destination_among_the_arguments():
    addresses = {"green1": "10.231.4.11", "green2": "10.231.4.12"}
    lines = ["ssh -C -o ControlMaster=auto -o User=\"root\" 10.231.4.11 /bin/sh -c 'python3'",
             "ssh -o ConnectTimeout=10 10.231.4.11 /bin/sh -c 'echo ~'",
             "sftp -b - -o Port=22 '[10.231.4.12]'",
             "ssh 10.231.4.99 true", "junk"]
    assert bench.per_host_ssh(lines, addresses) == {
        "green1": {"ssh": 2, "sftp": 0, "module": 1, "home": 1},
        "green2": {"ssh": 0, "sftp": 1}}
    assert bench.ssh_kind("/bin/sh -c '( umask 77 && mkdir -p \"` echo x `\" )'") == "tmpdir"
    assert bench.ssh_kind("/bin/sh -c 'rm -f -r /root/.ansible/tmp/x/ > /dev/null 2>&1'") \
        == "cleanup"
    assert bench.ssh_kind("/bin/sh -c 'true'") == "other"


def test_fit_line_is_least_squares_and_needs_two_sizes():
    fit = bench.fit_line([(1, 3.0), (3, 7.0), (5, 11.0), (10, 21.0)])
    assert (fit["a"], fit["b"], fit["r2"], fit["n"]) == (1.0, 2.0, 1.0, 4)
    noisy = bench.fit_line([(1, 2.0), (1, 4.0), (3, 6.0), (3, 8.0)])
    assert (noisy["a"], noisy["b"]) == (1.0, 2.0) and 0 < noisy["r2"] < 1
    assert bench.fit_line([(1, 2.0), (1, 3.0)]) is None


def _row(n, wall, ctl, main, lab, run=1):
    return {"hosts_per_pool": n, "run": run, "rc": 0, "deploy_s": wall, "controller_cpu_s": ctl,
            "main_cpu_s": main, "lab_cpu_s": lab, "total_cpu_s": ctl + lab,
            "tasks_per_target_host": 20 + n, "ssh_per_target_host": 12,
            "modules_per_target_host": 9,
            "sftp_per_target_host": 1}


def test_scaling_model_fits_and_projects_by_the_stated_model():
    rows = [_row(1, 20.0, 10.0, 4.0, 5.0), _row(10, 29.0, 28.0, 13.0, 32.0),
            {"hosts_per_pool": 5, "rc": 1, "deploy_s": 999.0}]  # a failed run is left out
    model = bench.scaling_model(rows, lab_cores=2)
    assert model["fits"]["deploy_s"]["b"] == 1.0 and model["fits"]["main_cpu_s"]["b"] == 1.0
    assert model["fits"]["total_cpu_s"]["b"] == 5.0
    assert model["tasks_per_target_host"] == 30  # the worst run
    assert model["modules_per_target_host"] == 9
    # S = wall(1) - controller CPU(1) / lab cores = 20 - 10/2
    assert model["wave_latency_s"] == 15.0
    by = {(p["hosts_per_pool"], p["cores"], p["forks"]): p["seconds"]
          for p in model["projection"]}
    # 1000 hosts, 8 cores, 50 forks: max(M=3+1000, C=8+2000 / 8) + 15 * 20 waves
    assert by[(1000, 8, 50)] == 1003.0 + 300.0
    assert by[(100, 2, 25)] == max(103.0, 208.0 / 2) + 15.0 * 4
    assert "ceil(N/F)" in model["model"]
    targets = {t.name: t for t in bench.evaluate_targets({"scaling_model": model})}
    assert targets["CPU per extra host per pool (controller + lab hosts, fitted slope)"].met \
        is False
    assert targets["wall time per extra host per pool (fitted slope)"].met is True
    projected = [t for n, t in targets.items() if n.startswith("projected 1000+1000")]
    assert projected[0].measured == "1303 s" and projected[0].met is False


def test_scaling_model_without_two_sizes_projects_nothing_and_targets_say_not_measured():
    model = bench.scaling_model([_row(1, 20.0, 10.0, 4.0, 5.0)], lab_cores=2)
    assert model["projection"] == [] and model["fits"]["deploy_s"] is None
    targets = bench.evaluate_targets({"scaling_model": model})
    assert all(t.met is None for t in targets if "per extra host" in t.name)


def test_scaling_points_take_the_median_of_a_sizes_runs():
    results = {"deploy_scaling": [_row(1, 20.0, 1, 1, 1), _row(1, 24.0, 1, 1, 1, run=2),
                                  _row(1, 21.0, 1, 1, 1, run=3), _row(3, 30.0, 1, 1, 1)]}
    assert bench.scaling_points(results) == [(1, 21.0), (3, 30.0)]
