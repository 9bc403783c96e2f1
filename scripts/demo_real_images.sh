#!/usr/bin/env bash
# Download two real OS images through the service and check them against published MD5s.
#
# The images are the armhf netboot kernel (vmlinuz) and initrd (initrd.gz) from Debian's package
# debian-installer-12-netboot-armhf. The expected MD5s come from the package's md5sums control
# file, so the check compares the service's result with values Debian published, not with values
# computed on this machine. A local HTTP server on 127.0.0.1 serves the two files to the service.
# A third record points at vmlinuz with a wrong MD5 and must fail with error_code md5_mismatch.
#
# Usage: bash scripts/demo_real_images.sh [--url URL] [--timeout SECONDS]
# Exits 0 only when both Debian images succeed with the published MD5s and the wrong-MD5 record
# fails with md5_mismatch. Needs apt-get and dpkg-deb (Debian or a derivative), and root for
# `apt-get update` when the package index does not list the package yet.
set -euo pipefail

PACKAGE=debian-installer-12-netboot-armhf
IMAGES_DIR=usr/lib/debian-installer/images/12/armhf

usage() {
    cat <<'EOF'
Usage: bash scripts/demo_real_images.sh [--url URL] [--timeout SECONDS]

Downloads Debian's debian-installer-12-netboot-armhf package, serves its netboot vmlinuz and
initrd.gz from a local HTTP server, registers them (plus one record with a wrong MD5) with the
OS image service, triggers the downloads and checks the MD5s against the package's md5sums file.

Options:
  --url URL          base URL of an already running service, e.g. http://127.0.0.1:8000.
                     Default: $API_URL. When neither is set, the demo starts its own
                     `python -m app run` in memory. A given service must run on this host,
                     because the files are served on 127.0.0.1. API_KEY must then contain a
                     key of organization $ORGANIZATION (default "default"). The records the
                     demo creates there are deleted at exit.
  --timeout SECONDS  maximum time to wait for the downloads to finish (default 300)
  -h, --help         show this help
EOF
}

api_url=${API_URL:-}
timeout_s=300
while [[ $# -gt 0 ]]; do
    case $1 in
        --url) api_url=${2:?--url needs a URL}; shift 2 ;;
        --url=*) api_url=${1#--url=}; shift ;;
        --timeout) timeout_s=${2:?--timeout needs a number of seconds}; shift 2 ;;
        --timeout=*) timeout_s=${1#--timeout=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1'; see --help" >&2; exit 2 ;;
    esac
done
if ! [[ $timeout_s =~ ^[1-9][0-9]*$ ]]; then
    echo "error: --timeout must be a positive whole number of seconds, got '$timeout_s'" >&2
    exit 2
fi
if [[ -n $api_url && -z ${API_KEY:-} ]]; then
    echo "error: --url/API_URL is set but API_KEY is not: set API_KEY to a key of that service" >&2
    exit 2
fi

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
if [[ -x .venv/bin/python ]]; then
    python=$repo_root/.venv/bin/python
else
    python=$(command -v python3)
fi
for tool in apt-get apt-cache dpkg-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found: this demo needs Debian's package tools" >&2
        exit 1
    fi
done

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/os-image-demo.XXXXXX")
started_pids=()
service_log=$work_dir/service.log
file_server_log=$work_dir/file-server.log

# Stop the processes this script started, by PID, then remove the work dir. On failure the tail
# of the service log is printed first, because the log goes away with the work dir.
cleanup() {
    local status=$?
    if [[ $status -ne 0 && -s $service_log ]]; then
        echo "--- last lines of the service log ($service_log) ---" >&2
        tail -n 30 "$service_log" >&2 || true
    fi
    local pid
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "warning: process $pid did not stop within 10 s of SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work_dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The API client is a Python program with two subcommands (ping, run) on the standard library,
# so that JSON is parsed by a JSON parser. It reads its settings from DEMO_* environment
# variables, which keeps the API key off the command line.
read -r -d '' client_py <<'PY' || true
import json
import os
import sys
import time
import urllib.error
import urllib.request

API_PREFIX = "/ux/nccm/os-image"
FINAL_STATES = {"succeeded", "failed", "cancelled"}


class ApiError(Exception):
    pass


def call_api(method, path, body=None, timeout_s=10.0):
    """Send one request to the service and return the decoded JSON body (None when empty)."""
    url = os.environ["DEMO_API_URL"] + API_PREFIX + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", os.environ["DEMO_API_KEY"])
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        raise ApiError(f"{method} {path} returned HTTP {exc.code}: {exc.read().decode()}") from None
    return json.loads(text) if text else None


def ping():
    """Return 0 when the service accepts the key, 1 when it is not up yet, 2 on an error."""
    try:
        allowed = call_api("GET", "/get-allowed-file-types/", timeout_s=2.0)["allowed_file_types"]
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError:
        return 1
    missing = [suffix for suffix in (".bin", ".gz") if suffix not in allowed]
    if missing:
        print(
            f"error: the service does not allow the file types {missing} "
            f"(allowed: {', '.join(allowed)}); add them to the service's ALLOWED_FILE_TYPES setting",
            file=sys.stderr,
        )
        return 2
    return 0


def build_image_specs():
    env = os.environ
    version = env["DEMO_PACKAGE_VERSION"]
    suffix = env["DEMO_IMG_ID_SUFFIX"]
    base_url = env["DEMO_FILE_SERVER_URL"]
    common = {
        "organization": env["DEMO_ORGANIZATION"], "vendor": "Debian", "ostype": "Linux",
        "series": "debian-installer", "model": "armhf", "os_version": f"12 ({version})",
        "uploaded_type": 2,
    }
    return [
        # The service accepts only file names whose suffix is an allowed file type, and the
        # kernel is published as plain `vmlinuz`, so its records get a name ending in .bin.
        # The file name only names the stored file; the download URL keeps the original name.
        dict(common, img_id="deb12-vmlinuz" + suffix, file_name="debian12-armhf-vmlinuz.bin",
             file_path=base_url + "/vmlinuz", md5_hash=env["DEMO_VMLINUZ_MD5"],
             image_size=env["DEMO_VMLINUZ_SIZE"], image_type="netboot kernel",
             description=f"{env['DEMO_PACKAGE']} {version}: vmlinuz"),
        dict(common, img_id="deb12-initrd" + suffix, file_name="debian12-armhf-initrd.gz",
             file_path=base_url + "/initrd.gz", md5_hash=env["DEMO_INITRD_MD5"],
             image_size=env["DEMO_INITRD_SIZE"], image_type="netboot initrd",
             description=f"{env['DEMO_PACKAGE']} {version}: initrd.gz"),
        dict(common, img_id="deb12-vmlinuz-badmd5" + suffix,
             file_name="debian12-armhf-vmlinuz-badmd5.bin",
             file_path=base_url + "/vmlinuz", md5_hash=env["DEMO_WRONG_MD5"],
             image_size=env["DEMO_VMLINUZ_SIZE"], image_type="netboot kernel",
             description=f"{env['DEMO_PACKAGE']} {version}: vmlinuz, registered with a wrong MD5"),
    ]


def wait_for_jobs(record_ids, names, timeout_s):
    """Poll the status endpoint until every job is final; return the jobs by record id."""
    deadline = time.monotonic() + timeout_s
    last_states = {}
    while True:
        jobs = call_api("GET", "/os-images-status/?image_ids=" + ",".join(record_ids))
        by_record = {job["image_record_id"]: job for job in jobs}
        for record_id in record_ids:
            job = by_record.get(record_id)
            state = job["state"] if job else "missing"
            if last_states.get(record_id) != state:
                print(f"  {names[record_id]:<26} {state}", flush=True)
                last_states[record_id] = state
        if all(by_record.get(rid, {}).get("state") in FINAL_STATES for rid in record_ids):
            return by_record
        if time.monotonic() > deadline:
            unfinished = [names[rid] for rid in record_ids if last_states[rid] not in FINAL_STATES]
            raise ApiError(
                f"timed out after {timeout_s} s waiting for the downloads of {unfinished}; "
                "raise --timeout for a slow machine"
            )
        time.sleep(1.0)


def run():
    specs = build_image_specs()
    created = []
    try:
        return check_downloads(specs, created)
    finally:
        if os.environ.get("DEMO_DELETE_RECORDS") == "1":
            for record_id in created:
                call_api("DELETE", f"/{record_id}/")
            if created:
                print(f"Deleted the {len(created)} demo records from the service.")


def check_downloads(specs, created):
    names = {}
    for spec in specs:
        record = call_api("POST", "/", spec)
        created.append(record["id"])
        names[record["id"]] = spec["img_id"]
        print(f"Registered {spec['img_id']:<26} id {record['id']}  file_name {spec['file_name']}")

    for record_id in created:
        result = call_api("POST", "/trigger-osdownload/", {"id": record_id})
        job_ids = [job["job_id"] for job in result["jobs"]]
        print(f"Triggered  {names[record_id]:<26} job {', '.join(job_ids)}")

    print("Waiting for the downloads:")
    jobs = wait_for_jobs(created, names, float(os.environ["DEMO_TIMEOUT_S"]))
    records = {record_id: call_api("GET", f"/{record_id}/") for record_id in created}

    rows, problems = [], []
    for spec, record_id in zip(specs, created):
        job, record = jobs[record_id], records[record_id]
        computed = job["md5_hash"] or "-"
        expected = spec["md5_hash"]
        size = record["image_size"] if job["state"] == "succeeded" else str(job["bytes_done"])
        rows.append((
            spec["img_id"], job["state"], size, computed, expected,
            "yes" if computed == expected else "no", job["error_code"] or "-",
        ))
        if spec is specs[-1]:
            if job["state"] != "failed" or job["error_code"] != "md5_mismatch":
                problems.append(
                    f"{spec['img_id']}: expected state failed with error_code md5_mismatch, "
                    f"got state {job['state']} with error_code {job['error_code']}"
                )
            continue
        checks = [
            ("job state", job["state"], "succeeded"),
            ("job md5_hash", job["md5_hash"], expected),
            ("record md5_hash", record["md5_hash"], expected),
            ("record md5_verified", record["md5_verified"], True),
            ("record file_status", record["file_status"], "available"),
            ("record image_size", record["image_size"], spec["image_size"]),
        ]
        for field, actual, expected_value in checks:
            if actual != expected_value:
                problems.append(
                    f"{spec['img_id']}: {field} is {actual!r}, expected {expected_value!r}"
                )
        if job["error_message"] and job["state"] != "succeeded":
            problems.append(f"{spec['img_id']}: {job['error_code']}: {job['error_message']}")

    header = ("img_id", "state", "size", "MD5 computed", "MD5 expected", "match", "error_code")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    print()
    print("MD5 computed: the job's md5_hash, which the service computed while downloading.")
    print("MD5 expected: the value in the package's md5sums file; for the -badmd5 record, the")
    print("deliberately wrong value it was registered with.")
    failed_job = jobs[created[-1]]
    if failed_job["error_message"]:
        print(f"{specs[-1]['img_id']} error_message: {failed_job['error_message']}")
    print()
    if problems:
        print("FAILED:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print("PASSED: both Debian images match the published MD5s; the wrong MD5 was rejected.")
    return 0


def main():
    command = sys.argv[1]
    try:
        return {"ping": ping, "run": run}[command]()
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


sys.exit(main())
PY

find_free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 1. Fetch the package and read the published MD5s from its md5sums control file.
# The policy output is captured first, because with pipefail `grep -q` closing the pipe early
# would make apt-cache fail with SIGPIPE and the test report a missing candidate.
package_policy=$(apt-cache policy "$PACKAGE" 2>/dev/null || true)
if ! grep -Eq 'Candidate: [^(]' <<<"$package_policy"; then
    echo "The package index does not list $PACKAGE; running apt-get update."
    apt-get update -qq
fi
download_dir=$work_dir/deb
mkdir -p "$download_dir"
if [[ $EUID -eq 0 ]] && id _apt >/dev/null 2>&1; then
    # apt fetches as the unprivileged user _apt, which needs to reach and write the target dir.
    chmod 711 "$work_dir"
    chown _apt "$download_dir"
fi
(cd "$download_dir" && apt-get download -qq "$PACKAGE")
deb_file=$(find "$download_dir" -maxdepth 1 -name "${PACKAGE}_*.deb" | head -n 1)
if [[ -z $deb_file ]]; then
    echo "error: apt-get download left no ${PACKAGE}_*.deb in $download_dir" >&2
    exit 1
fi
package_version=$(dpkg-deb -f "$deb_file" Version)
echo "Downloaded $(basename "$deb_file") ($(stat -c %s "$deb_file") bytes)."

root_dir=$work_dir/root
control_dir=$work_dir/control
dpkg-deb -x "$deb_file" "$root_dir"
dpkg-deb -e "$deb_file" "$control_dir"

# Directories that contain both a vmlinuz and an initrd.gz. Debian 12's package has one, the
# text installer (text/debian-installer/armhf). A netboot/ flavour, when present, is preferred.
mapfile -t image_dirs < <(
    cd "$root_dir" && find "$IMAGES_DIR" -name vmlinuz -printf '%h\n' | sort |
        while read -r dir; do [[ -f $dir/initrd.gz ]] && echo "$dir"; done
)
if [[ ${#image_dirs[@]} -eq 0 ]]; then
    echo "error: no directory under $IMAGES_DIR in $PACKAGE contains both vmlinuz and initrd.gz" >&2
    exit 1
fi
image_dir=${image_dirs[0]}
for dir in "${image_dirs[@]}"; do
    if [[ /$dir/ == */netboot/* ]]; then
        image_dir=$dir
        break
    fi
done
echo "Netboot files: /$image_dir/{vmlinuz,initrd.gz}"
if [[ ${#image_dirs[@]} -gt 1 ]]; then
    echo "  (the package has ${#image_dirs[@]} flavours: $(printf '/%s ' "${image_dirs[@]}"))"
fi

published_md5() {
    # md5sums lines are "<md5>  <path relative to />".
    local md5
    md5=$(awk -v path="$1" '$2 == path { print $1 }' "$control_dir/md5sums")
    if ! [[ $md5 =~ ^[0-9a-f]{32}$ ]]; then
        echo "error: the md5sums file of $PACKAGE has no MD5 for $1" >&2
        return 1
    fi
    echo "$md5"
}
vmlinuz_md5=$(published_md5 "$image_dir/vmlinuz")
initrd_md5=$(published_md5 "$image_dir/initrd.gz")
vmlinuz_size=$(stat -c %s "$root_dir/$image_dir/vmlinuz")
initrd_size=$(stat -c %s "$root_dir/$image_dir/initrd.gz")
# Each hex digit replaced by 15 minus itself, so the wrong MD5 differs from the real one in
# every digit and is still a valid 32-digit MD5 that passes the API's format check.
wrong_md5=$(echo "$vmlinuz_md5" | tr '0123456789abcdef' 'fedcba9876543210')
echo "Published MD5s (md5sums of $PACKAGE $package_version):"
echo "  vmlinuz    $vmlinuz_md5  $vmlinuz_size bytes"
echo "  initrd.gz  $initrd_md5  $initrd_size bytes"

# 2. Serve the two files on 127.0.0.1. Port 0 lets the kernel pick a free port, which
# http.server prints at start.
served_dir=$work_dir/served
mkdir -p "$served_dir"
ln "$root_dir/$image_dir/vmlinuz" "$root_dir/$image_dir/initrd.gz" "$served_dir/"
"$python" -u -m http.server 0 --bind 127.0.0.1 --directory "$served_dir" >"$file_server_log" 2>&1 &
started_pids+=($!)
file_server_port=
for _ in $(seq 1 100); do
    file_server_port=$(sed -n 's/^Serving HTTP on .* port \([0-9]*\) .*/\1/p' "$file_server_log")
    [[ -n $file_server_port ]] && break
    if ! kill -0 "${started_pids[-1]}" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [[ -z $file_server_port ]]; then
    echo "error: the file server did not start; its output:" >&2
    cat "$file_server_log" >&2
    exit 1
fi
file_server_url=http://127.0.0.1:$file_server_port
echo "File server: $file_server_url (PID ${started_pids[-1]})"

# 3. Start the service, unless one was given.
organization=${ORGANIZATION:-default}
if [[ -n $api_url ]]; then
    api_key=$API_KEY
    api_url=${api_url%/}
    delete_records=1
    # A live image's img_id must be unique in its organization, so runs against a shared
    # service append a random tag to their img_ids.
    img_id_suffix=-$(printf '%04x' $((RANDOM % 65536)))
    echo "Service: $api_url (already running)"
else
    api_key=$("$python" -c 'import secrets; print(secrets.token_urlsafe(32))')
    # NOTE: another process can take the port between this check and the service's bind. The
    # service then exits, and the wait below reports it with the log.
    service_port=$(find_free_port)
    api_url=http://127.0.0.1:$service_port
    delete_records=0
    img_id_suffix=
    API_KEY=$api_key HOST=127.0.0.1 PORT=$service_port STORAGE_DIR=$work_dir/storage \
        MONGODB_URL= REDIS_URL= "$python" -m app run >"$service_log" 2>&1 &
    service_pid=$!
    started_pids+=("$service_pid")
    echo "Service: $api_url (python -m app run, PID $service_pid, in memory)"
fi

export DEMO_API_URL=$api_url DEMO_API_KEY=$api_key DEMO_ORGANIZATION=$organization
export DEMO_FILE_SERVER_URL=$file_server_url DEMO_PACKAGE=$PACKAGE
export DEMO_PACKAGE_VERSION=$package_version DEMO_IMG_ID_SUFFIX=$img_id_suffix
export DEMO_VMLINUZ_MD5=$vmlinuz_md5 DEMO_VMLINUZ_SIZE=$vmlinuz_size
export DEMO_INITRD_MD5=$initrd_md5 DEMO_INITRD_SIZE=$initrd_size DEMO_WRONG_MD5=$wrong_md5
export DEMO_TIMEOUT_S=$timeout_s DEMO_DELETE_RECORDS=$delete_records

ready=0
start_deadline=$((SECONDS + 30))
while [[ $SECONDS -lt $start_deadline ]]; do
    if [[ -n ${service_pid:-} ]] && ! kill -0 "$service_pid" 2>/dev/null; then
        echo "error: the service (PID $service_pid) exited during start" >&2
        exit 1
    fi
    status=0
    "$python" -c "$client_py" ping || status=$?
    if [[ $status -eq 0 ]]; then
        ready=1
        break
    elif [[ $status -eq 2 ]]; then
        exit 1
    fi
    sleep 0.1
done
if [[ $ready -ne 1 ]]; then
    echo "error: timed out after 30 s waiting for the service at $api_url to respond" >&2
    exit 1
fi

# 4. Register, trigger, wait and compare.
echo
"$python" -c "$client_py" run
