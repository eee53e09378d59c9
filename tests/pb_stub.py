"""A tiny PortaBilling on loopback for client tests: answers from a dict, records every request.

Unlike the emulator it knows only the calls these tests need, and a test can make any call
answer anything (a fault, HTML, a truncated body, a dropped connection) to see what the client
does with it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.backends.portabilling.client import ClientSettings

# Client settings for stub tests: short timeouts, almost no back-off, small pages.
FAST = ClientSettings(connect_timeout=1.0, read_timeout=1.0, backoff=0.001, page_size=100)

# (status, body) where body is an object to send as JSON, or bytes to send as they are;
# None drops the connection.
Answer = tuple[int, Any] | None
Override = Callable[[str, dict[str, Any], int], Answer | bool]

PRODUCTS = [
    {"i_product": 1, "name": "Cloud PBX service", "addon_priority": 0},
    {"i_product": 2, "name": "Auto attendant", "addon_priority": 0},
    {"i_product": 3, "name": "Call recording", "addon_priority": 10},
    {"i_product": 4, "name": "Voicemail to email", "addon_priority": 10},
]

WRITES = frozenset(
    {
        "Customer/add_customer_extension",
        "Customer/update_customer_extension",
        "Account/add_account",
        "Account/update_account",
        "Account/add_alias",
        "Account/delete_alias",
        "Account/terminate_account",
    }
)


def customer(cid: int = 46170, name: str = "ABC", **info: Any) -> dict[str, Any]:
    return {
        "info": {"i_customer": cid, "name": name, "i_role": 2, **info},
        "agreement": [
            {"i_product": 1, "max_offered_quantity": 0},
            {"i_product": 2, "max_offered_quantity": 1},
            {"i_product": 3, "max_offered_quantity": 0},
            {"i_product": 4, "max_offered_quantity": 0},
        ],
        "numbers": [{"i_did_number": n, "number": f"1209555{n:04d}"} for n in range(1, 6)],
        "accounts": [],
        "extensions": [],
    }


def account(i_account: int, account_id: str, cid: int = 46170, **fields: Any) -> dict[str, Any]:
    row = {
        "i_account": i_account,
        "id": account_id,
        "i_customer": cid,
        "i_product": 1,
        "billing_model": 1,
        "assigned_addons": [],
        "alias_list": [],
        "blocked": "N",
        "bill_status": "O",
        "firstname": "",
        "note": "",
    }
    row.update(fields)
    return row


class Stub:
    def __init__(self, *customers: dict[str, Any], page_cap: int = 100) -> None:
        self.customers = {c["info"]["i_customer"]: c for c in customers}
        self.page_cap = page_cap
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.overrides: list[Override] = []
        self.tokens = 0
        # Variants a real server may show (wire contract v3): answers without blocked_by, an
        # extension account ID format of billing's own, what Generic/get_session_data says.
        self.show_blocked_by = True
        self.account_id_format = "ph{c}x{ext}"
        self.session_data: dict[str, Any] = {"operating_mode": "normal"}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                method = self.path[len("/rest/") :]
                with stub._lock:
                    stub.requests.append((method, dict(self.headers), body["params"]))
                    n = len(stub.requests)
                    answer = stub.answer(method, body["params"], n)
                if answer is None:
                    self.close_connection = True
                    return
                status, payload = answer
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type",
                    "application/json" if not isinstance(payload, bytes) else "text/html",
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"portabilling+http://127.0.0.1:{self.httpd.server_address[1]}"
        self.env = {"PORTABILLING_LOGIN": "api", "PORTABILLING_PASSWORD": "pw"}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # -- what was asked --

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.requests]

    def params_of(self, method: str) -> list[dict[str, Any]]:
        return [p for m, _, p in self.requests if m == method]

    def writes(self) -> list[str]:
        return [m for m in self.methods() if m in WRITES]

    # -- answers --

    def answer(self, method: str, params: dict[str, Any], n: int) -> Answer:
        for override in self.overrides:
            result = override(method, params, n)
            if result is not False:
                return result  # type: ignore[return-value]
        if method == "Session/login":
            self.tokens += 1
            return 200, {
                "access_token": f"a{self.tokens}",
                "refresh_token": f"r{self.tokens}",
                "expires_in": 900,
            }
        if method == "Session/refresh_access_token":
            self.tokens += 1
            return 200, {
                "access_token": f"a{self.tokens}",
                "refresh_token": f"r{self.tokens}",
                "expires_in": 900,
            }
        handler = getattr(self, "_" + method.replace("/", "_"), None)
        if handler is None:
            return 500, {
                "faultcode": "Server.Generic.unknown_method",
                "faultstring": f"no {method}",
            }
        return handler(params)

    def _page(self, items: list[Any], key: str, params: dict[str, Any]) -> Answer:
        offset = int(params.get("offset", 0))
        limit = min(int(params.get("limit", self.page_cap)), self.page_cap)
        return 200, {key: items[offset : offset + limit], "total": len(items)}

    def _c(self, params: dict[str, Any]) -> dict[str, Any] | None:
        return self.customers.get(int(params.get("i_customer", 0)))

    def _Product_get_product_list(self, params: dict[str, Any]) -> Answer:
        return self._page(PRODUCTS, "product_list", params)

    def _Generic_get_session_data(self, params: dict[str, Any]) -> Answer:
        return 200, dict(self.session_data)

    def _shown(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.show_blocked_by:
            return row
        return {k: v for k, v in row.items() if k != "blocked_by"}

    def _Customer_get_customer_list(self, params: dict[str, Any]) -> Answer:
        return self._page([c["info"] for c in self.customers.values()], "customer_list", params)

    def _Customer_get_customer_info(self, params: dict[str, Any]) -> Answer:
        c = self._c(params)
        if c is None:
            return 500, {
                "faultcode": "Server.Customer.not_found",
                "faultstring": "no such customer",
            }
        return 200, {"customer_info": c["info"]}

    def _Customer_get_customer_agreement_info(self, params: dict[str, Any]) -> Answer:
        c = self._c(params)
        return 200, {"agreement_info": {"agreement_condition_list": c["agreement"] if c else []}}

    def _DID_get_number_list(self, params: dict[str, Any]) -> Answer:
        return self._page(self._c(params)["numbers"], "number_list", params)  # type: ignore[index]

    def _Account_get_account_list(self, params: dict[str, Any]) -> Answer:
        rows = [self._shown(r) for r in self._c(params)["accounts"]]  # type: ignore[index]
        return self._page(rows, "account_list", params)

    def _Customer_get_extensions_list(self, params: dict[str, Any]) -> Answer:
        return self._page(self._c(params)["extensions"], "extensions_list", params)  # type: ignore[index]

    def _find(self, params: dict[str, Any]) -> dict[str, Any] | None:
        for c in self.customers.values():
            for row in c["accounts"]:
                if ("id" in params and row["id"] == params["id"]) or (
                    "i_account" in params and row["i_account"] == params["i_account"]
                ):
                    return row  # type: ignore[no-any-return]
        return None

    def _Account_get_account_info(self, params: dict[str, Any]) -> Answer:
        row = self._find(params)
        return 200, ({"account_info": self._shown(row)} if row else {})

    def _Account_get_alias_list(self, params: dict[str, Any]) -> Answer:
        row = self._find({"i_account": params["i_master_account"]})
        return self._page(row["alias_list"] if row else [], "alias_list", params)

    def _next_i_account(self) -> int:
        return 1000 + sum(len(c["accounts"]) for c in self.customers.values())

    def _Customer_add_customer_extension(self, params: dict[str, Any]) -> Answer:
        c = self._c(params)
        assert c is not None
        if "i_product" in params:
            i_account = self._next_i_account()
            c["accounts"].append(
                account(
                    i_account,
                    self.account_id_format.format(c=params["i_customer"], ext=params["id"]),
                    params["i_customer"],
                    i_product=params["i_product"],
                )
            )
        else:
            i_account = params["i_account"]
        i_c_ext = 500 + len(c["extensions"])
        c["extensions"].append(
            {"i_c_ext": i_c_ext, "id": params["id"], "name": params["name"], "i_account": i_account}
        )
        return 200, {"i_c_ext": i_c_ext}

    def _Account_add_account(self, params: dict[str, Any]) -> Answer:
        info = params["account_info"]
        c = self.customers[info["i_customer"]]
        i_account = self._next_i_account()
        row = account(i_account, info["id"], info["i_customer"])
        row.update({k: v for k, v in info.items() if k not in ("i_account_role",)})
        c["accounts"].append(row)
        return 200, {"i_account": i_account}

    def _Account_update_account(self, params: dict[str, Any]) -> Answer:
        info = params["account_info"]
        row = self._find({"i_account": info["i_account"]})
        assert row is not None
        row.update(info)
        if info.get("blocked") == "N":
            row.pop("blocked_by", None)
        return 200, {"i_account": info["i_account"]}

    def _Account_add_alias(self, params: dict[str, Any]) -> Answer:
        info = params["alias_info"]
        row = self._find({"i_account": info["i_master_account"]})
        assert row is not None
        i_alias = 9000 + len(self.requests)
        row["alias_list"].append({"i_account": i_alias, "id": info["id"]})
        return 200, {"i_account": i_alias}

    def _Account_terminate_account(self, params: dict[str, Any]) -> Answer:
        row = self._find(params)
        assert row is not None
        row["bill_status"] = "C"
        return 200, {}

    def _Customer_update_customer_extension(self, params: dict[str, Any]) -> Answer:
        c = self._c(params)
        assert c is not None
        for extension in c["extensions"]:
            if extension["i_c_ext"] == params["i_c_ext"]:
                extension["name"] = params["name"]
        return 200, {"i_c_ext": params["i_c_ext"]}
