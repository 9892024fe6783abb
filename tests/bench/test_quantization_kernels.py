"""bench/quantization_kernels.py end to end at its smoke size."""

from bench import quantization_kernels


def test_smoke_times_every_route_and_checks_its_ops():
    report = quantization_kernels.main(["--smoke"])
    assert [(r["rows"], r["d_in"], r["d_out"]) for r in report["results"]] == [(4, 512, 512)]
    for entry in report["results"]:
        routes = entry["routes"]
        assert set(routes) == set(quantization_kernels.ROUTES)
        assert routes["float"]["speed_vs_float"] == 1.0 and routes["float"]["error"] < 1e-5
        # What zoo's int8 export runs: int8 weights cast to float, one scale per channel.
        assert {"Cast", "MatMul", "Mul"} <= set(routes["weight_only"]["ops"])
        assert 0 < routes["weight_only"]["error"] < 0.02 and routes["weight_only"]["us"] > 0
        assert "BatchMatMulV3" in routes["int8_dynamic"]["ops"] and routes["int8_dynamic"]["error"] < 0.05
        assert "QuantizedMatMul" in routes["tf_quantization"]["ops"]
        assert all(route["audit_refuses"] == [] for route in routes.values())  # all core ops
        assert routes["float"]["in_while_loop"] is None and routes["weight_only"]["in_while_loop"] is None
    # The process with oneDNN off answered for every route; the float ones run there.
    assert set(report["without_onednn"]) == set(quantization_kernels.ROUTES)
    assert report["without_onednn"]["float"] is None and report["without_onednn"]["weight_only"] is None
