"""Parsing of the vendors' management tools (npu-smi, amd-smi, rocm-smi) on recorded outputs.

The recordings in tests/data/telemetry are copied from public documentation and code (their
README names each source); none was recorded by us, as no such hardware was available.
"""

from pathlib import Path

import pytest

from zhisuan.bench.validate import telemetry, telemetry_smi

DATA = Path(__file__).parent / "data" / "telemetry"


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def test_npu_smi_summary_of_a_910b1():
    chips, processes = telemetry_smi.parse_npu_smi_info(recorded("npu-smi-info-910b1.txt"))
    assert list(chips) == [(0, 0)] and processes == {}
    chip = chips[(0, 0)]
    assert (chip["name"], chip["health"], chip["power_w"], chip["temp_c"]) == ("910B1", "OK", 88.4, 46.0)
    assert (chip["bus_id"], chip["hbm_used_mb"], chip["hbm_total_mb"]) == ("0000:c1:00.0", 4175.0, 65536.0)


def test_npu_smi_summary_of_a_910c_has_one_entry_per_die():
    chips, _ = telemetry_smi.parse_npu_smi_info(recorded("npu-smi-info-910c-rows.txt"))
    assert sorted(chips) == [(0, 0), (0, 1)]
    assert chips[(0, 0)]["power_w"] == 182.0 and chips[(0, 1)]["power_w"] is None  # '-' on the second die
    assert [chips[k]["temp_c"] for k in sorted(chips)] == [36.0, 35.0]
    assert chips[(0, 1)]["bus_id"] == "0000:9f:00.0"


def test_npu_smi_process_rows():
    text = recorded("npu-smi-info-910b1.txt") + (
        "| NPU     Chip              | Process id    | Process name             | Process memory(MB)      |\n"
        "| 0       0                 | 1444272       | python                   | 60970                   |\n"
    )  # the process table's layout, after the summary
    assert telemetry_smi.parse_npu_smi_info(text)[1] == {(0, 0): [1444272]}


def test_npu_smi_mapping_leaves_out_the_mcu():
    mapping = telemetry_smi.parse_npu_smi_mapping(recorded("npu-smi-info-m-910b3.txt"))
    assert mapping == {0: (0, 0), 1: (1, 0)}


def test_npu_smi_common_fields():
    fields = telemetry_smi.parse_colon_fields(recorded("npu-smi-info-t-common-910b1.txt"))
    assert fields["Aicore curFreq(MHZ)"] == "800" and fields["Aicore Count"] == "24"
    assert telemetry_smi.number(fields["NPU Real-time Power(W)"]) == 93.4


def test_amd_smi_power_metric():
    values = telemetry_smi.parse_amd_smi_metric(recorded("amd-smi-metric-p.json"))
    assert values["power_w"] == 10.0 and values["throttle"] == []
    # Not in a `-p` reading: None, never a guess.
    assert values["sm_clock_mhz"] is None and values["temp_c"] is None


def test_rocm_smi_of_an_mi250():
    values = telemetry_smi.parse_rocm_smi(recorded("rocm-smi-a-mi250.json"), 0)
    assert values == {"temp_c": 35.0, "power_w": 89.0, "sm_clock_mhz": 800.0, "mem_clock_mhz": 1600.0}
    with pytest.raises(LookupError):
        telemetry_smi.parse_rocm_smi(recorded("rocm-smi-a-mi250.json"), 1)


@pytest.mark.parametrize("text", ["-", "N/A", "", "(Mhz)"])
def test_number_is_none_for_what_is_no_number(text):
    assert telemetry_smi.number(text) is None


def test_the_source_is_chosen_by_device_type_and_tools_on_path(monkeypatch):
    for name in telemetry_smi.ROCM_VISIBLE:
        monkeypatch.delenv(name, raising=False)
    on_path = set()

    def which(tool):
        return f"/usr/bin/{tool}" if tool in on_path else None

    def reader(kind, bus=None):
        return telemetry_smi.reader_for(kind, 0, bus, which=which)

    assert "npu-smi is not on PATH" in reader("npu").why_not
    assert "none of amd-smi, rocm-smi, hy-smi" in reader("cuda").why_not
    assert "no telemetry tool for xpu" in reader("xpu").why_not
    on_path.add("hy-smi")
    assert reader("cuda").tool == "hy-smi"
    on_path.add("rocm-smi")
    assert reader("cuda").tool == "rocm-smi"
    on_path.add("amd-smi")
    assert reader("cuda", "0000:2f:00.0").selector == "0000:2f:00.0"
    assert reader("cuda").selector == "0"
    # Devices renumbered and no bus ID: no guess at which GPU the tool should read.
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "3")
    assert "HIP_VISIBLE_DEVICES renumbers" in reader("cuda").why_not


def test_an_unreadable_source_says_why_for_every_field():
    reading = telemetry.UnreadableTelemetry("no tool").read()
    assert all(reading[name] is None for name in telemetry.FIELDS)
    assert reading["unreadable"] == dict.fromkeys(telemetry.FIELDS, "no tool")
