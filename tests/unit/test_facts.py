"""Runtime API output -> the facts the report reads."""
# ruff: noqa: E501  (verbatim HAProxy CSV)

from turnout import report
from turnout.facts import lb_facts_from

SHOW_MAP = "0x562106c60620 active be_green\n"
SHOW_STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx
fe_app,FRONTEND,,,0,1,2000,5,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,1,,,,0,5,0,0,0
be_blue,blue1,0,0,0,1,,3,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,10,0,,1,3,1,,3,,2,0,,1,L7OK,200,1,0,3,0,0,0
be_blue,BACKEND,0,0,0,1,200,3,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,10,0,,1,3,0,,3,,1,0,,1,,,,0,3,0,0,0
be_green,green1,0,0,2,3,,9,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,10,0,,1,4,1,,9,,2,0,,1,L7OK,200,1,0,9,0,0,1
be_green,BACKEND,0,0,2,3,200,9,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,10,0,,1,4,0,,9,,1,0,,1,,,,0,9,0,0,1
"""


def test_servers_are_keyed_by_host_with_their_backend():
    facts = lb_facts_from("lb1", SHOW_MAP, SHOW_STAT)
    assert facts.live_pool == "green"
    assert facts.servers["green1"]["backend"] == "be_green"
    assert facts.servers["green1"]["status"] == "UP" and facts.servers["green1"]["scur"] == 2
    assert facts.backends["be_green"]["hrsp_5xx"] == 1


def test_report_sees_live_hosts_as_lb_servers():
    facts = lb_facts_from("lb1", SHOW_MAP, SHOW_STAT)
    manifest = {"schema_version": 1, "env": "lab", "live_pool": "green",
                "pools": {"blue": {"hosts": {}}, "green": {"hosts": {}}}, "history": []}
    hosts = {"blue1": {"version": "1", "sha256": "a" * 64, "pool": "blue"},
             "green1": {"version": "2", "sha256": "b" * 64, "pool": "green"}}
    pools = {"blue": ["blue1"], "green": ["green1"]}
    rows = report.build_rows(manifest, hosts, facts.as_report_input(), pools)
    by_host = {row.host: row for row in rows}
    assert by_host["green1"].role == "live" and by_host["green1"].lb_status == "UP"
    assert not any("not a server" in d for row in rows for d in row.drift)
