#!/usr/bin/env bash
# Manage the local drill stack: a TrueBond-like project folder (a git clone with one
# tag per release), locally built images, the compose project running on loopback, and
# its data stores, the MongoDB stand-in (SecantusDB) and Redis, run as plain processes.
#
#   stack.sh up [VERSION]    start the data stores (seeding them when empty), build what
#                            is missing and run the backend at VERSION
#   stack.sh set VERSION     point the backend at VERSION and recreate it (test resets)
#   stack.sh seed            replace the data of both stores with the drill data set and
#                            restart a running backend, so that its start-up steps
#                            (indexes, and v1.0.0's migration) run on the new data
#   stack.sh data-status     print a JSON summary of both stores' data
#   stack.sh start-stores    start each data store that does not respond
#   stack.sh stop-store mongodb|redis   stop one data store by its pid file
#   stack.sh status          print the running containers and their images
#   stack.sh down            stop the data stores, remove the containers and the drill
#                            folder, keep images
#
# Settings come from the environment:
#   TRUEBOND_DRILL_HOME  folder that contains upstream.git, truebond/, backup/, mongodb/,
#                        redis/ and datastores.env (default /var/tmp/truebond-drill)
#   VENV                 virtualenv with pymongo, redis-py and secantusdb
#                        (default: the repository's .venv)
#   DRILL_IMAGE_TAGS     backend releases built as images; the other git tags exist
#                        only in git, so that a rollback to them must rebuild
#                        (default "v0.9.5 v1.0.0-rc.1 v1.0.0")
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${VENV:-$repo/.venv}
python=$venv/bin/python
drill_home=${TRUEBOND_DRILL_HOME:-/var/tmp/truebond-drill}
project=$drill_home/truebond
upstream=$drill_home/upstream.git
image_tags=${DRILL_IMAGE_TAGS:-v0.9.5 v1.0.0-rc.1 v1.0.0}
frontend_tag=v2.3.1
compose_file=docker-compose.production.yml
export DOCKER_BUILDKIT=0

# Each release: its tag, whether its auth subsystem is broken, and whether it migrates
# the database schema at start. The newest release is the bad deploy that the drill
# rolls back.
releases=(
  "v0.9.4 false false"
  "v0.9.5 false false"
  "v1.0.0-rc.1 false false"
  "v1.0.0 true true"
)

# Python packages that the backend image needs, copied from the virtualenv into each
# release's build context (site-packages/), because RUN steps have no network here.
backend_packages=(pymongo bson gridfs dns redis)
backend_dist_infos=(pymongo dnspython redis)

# Data stores. The app's credentials are in project/env.production (MONGODB_URI and
# REDIS_URL); the MongoDB admin user below is the drill operator's. All drill-only.
mongodb_port=27017
redis_port=6379
mongodb_admin_user=drill_admin
mongodb_admin_password=drill-only-mongodb-admin-password
mongodb_home=$drill_home/mongodb
redis_home=$drill_home/redis
store_deadline=30

site_packages() {
  "$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

source_hash() {
  local site
  site=$(site_packages)
  {
    (cd "$here" && find app project -type f -print0 | sort -z | xargs -0 sha256sum)
    (cd "$site" && for name in "${backend_dist_infos[@]}"; do echo "$name"-*.dist-info; done)
    printf '%s\n' "${releases[@]}"
    declare -f write_release copy_backend_packages
  } | sha256sum | cut -c1-16
}

copy_backend_packages() {
  local target=$1 site name deb_dir
  site=$(site_packages)
  mkdir -p "$target"
  for name in "${backend_packages[@]}"; do
    cp -r "$site/$name" "$target/"
  done
  for name in "${backend_dist_infos[@]}"; do
    cp -r "$site/$name"-*.dist-info "$target/"
  done
  # redis-py imports async_timeout on Python before 3.11.3. The base image has Debian's
  # 3.11.2, and the virtualenv (3.11.7) lacks the package, so take Debian's.
  deb_dir=$(mktemp -d)
  (cd "$deb_dir" && apt-get download -qq python3-async-timeout 2>/dev/null)
  dpkg-deb -x "$deb_dir"/python3-async-timeout_*.deb "$deb_dir/root"
  cp -r "$deb_dir/root/usr/lib/python3/dist-packages/"async_timeout* "$target/"
  rm -rf "$deb_dir"
  find "$target" -name __pycache__ -type d -prune -exec rm -rf {} +
}

write_release() {
  local tree=$1 tag=$2 broken=$3 migrates=$4
  mkdir -p "$tree/backend" "$tree/frontend"
  cp "$here/app/backend/"*.py "$here/app/backend/Dockerfile.production" "$tree/backend/"
  [ -d "$tree/backend/site-packages" ] || copy_backend_packages "$tree/backend/site-packages"
  cp "$here/app/frontend/"* "$tree/frontend/"
  printf '{"version": "%s", "auth_broken": %s, "migrates": %s}\n' "$tag" "$broken" "$migrates" \
    > "$tree/backend/release.json"
  sed -e "s/@BACKEND_TAG@/$tag/" -e "s/@FRONTEND_TAG@/$frontend_tag/" \
    "$here/project/$compose_file" > "$tree/$compose_file"
  cp "$here/project/gitignore" "$tree/.gitignore"
}

create_repositories() {
  local hash=$1 work
  if [ -f "$drill_home/.source-hash" ] && [ "$(cat "$drill_home/.source-hash")" = "$hash" ] \
    && [ -d "$project/.git" ]; then
    return
  fi
  rm -rf "$upstream" "$project"
  mkdir -p "$drill_home"
  work=$(mktemp -d)
  git init -q -b main "$work"
  for entry in "${releases[@]}"; do
    read -r tag broken migrates <<<"$entry"
    write_release "$work" "$tag" "$broken" "$migrates"
    git -C "$work" add -A
    git -C "$work" -c user.name=drill -c user.email=drill@localhost \
      commit -q -m "Release $tag"
    git -C "$work" tag "$tag"
  done
  git clone -q --bare "$work" "$upstream"
  rm -rf "$work"
  git clone -q "$upstream" "$project"
  cp "$here/project/env.production" "$project/.env.production"
  chmod 0600 "$project/.env.production"
  mkdir -p "$drill_home/backup"
  echo "$hash" > "$drill_home/.source-hash"
}

build_images() {
  local hash=$1 tag tree current
  bash "$here/build-base-image.sh"
  for tag in $image_tags; do
    current=$(docker image inspect -f '{{ index .Config.Labels "org.truebond.drill-source" }}' \
      "truebond-backend:$tag" 2>/dev/null || true)
    [ "$current" = "$hash" ] && continue
    tree=$(mktemp -d)
    git -C "$project" worktree add -q --detach "$tree" "$tag"
    docker build -q --label "org.truebond.drill-source=$hash" \
      -f "$tree/backend/Dockerfile.production" -t "truebond-backend:$tag" "$tree/backend" >/dev/null
    git -C "$project" worktree remove --force "$tree"
    echo "built truebond-backend:$tag"
  done
  current=$(docker image inspect -f '{{ index .Config.Labels "org.truebond.drill-source" }}' \
    "truebond-frontend:$frontend_tag" 2>/dev/null || true)
  if [ "$current" != "$hash" ]; then
    docker build -q --label "org.truebond.drill-source=$hash" \
      -f "$here/app/frontend/Dockerfile.production" -t "truebond-frontend:$frontend_tag" \
      "$here/app/frontend" >/dev/null
    echo "built truebond-frontend:$frontend_tag"
  fi
}

env_value() {
  sed -n "s/^$1=//p" "$here/project/env.production"
}

# The connection settings of both stores, for datastores.py, the tests and the drill
# inventory, written to $drill_home/datastores.env with mode 0600.
write_datastores_env() {
  local mongodb_uri redis_url redis_password
  mongodb_uri=$(env_value MONGODB_URI)
  redis_url=$(env_value REDIS_URL)
  redis_password=${redis_url#redis://:}
  redis_password=${redis_password%%@*}
  mkdir -p "$drill_home"
  (
    umask 077
    cat > "$drill_home/datastores.env" <<EOF
MONGODB_URI=$mongodb_uri
MONGODB_ADMIN_URI=mongodb://$mongodb_admin_user:$mongodb_admin_password@127.0.0.1:$mongodb_port/?authSource=admin
MONGODB_DATA_DIR=$mongodb_home/data
MONGODB_PID_FILE=$mongodb_home/secantusd.pid
MONGODB_LOG_FILE=$mongodb_home/secantusd.log
REDIS_URL=$redis_url
REDIS_HOST=127.0.0.1
REDIS_PORT=$redis_port
REDIS_PASSWORD=$redis_password
REDIS_CONFIG=$redis_home/redis.conf
REDIS_DATA_DIR=$redis_home/data
REDIS_PID_FILE=$redis_home/redis.pid
REDIS_LOG_FILE=$redis_home/redis.log
EOF
  )
}

load_datastores_env() {
  write_datastores_env
  set -a
  # shellcheck disable=SC1091
  . "$drill_home/datastores.env"
  set +a
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_running() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Start secantusd-py in the background in its own session, so that it outlives this
# script and the terminal or test that ran it.
spawn_mongodb() {
  setsid "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$mongodb_port" \
    --storage-path "$MONGODB_DATA_DIR" --standalone "$@" \
    >>"$MONGODB_LOG_FILE" 2>&1 </dev/null &
  echo $! > "$MONGODB_PID_FILE"
}

wait_mongodb_port() {
  local deadline=$((SECONDS + store_deadline))
  until port_open "$mongodb_port"; do
    if [ $SECONDS -ge $deadline ] || ! pid_running "$MONGODB_PID_FILE"; then
      echo "the MongoDB stand-in did not listen on 127.0.0.1:$mongodb_port within" \
        "$store_deadline s; see its log $MONGODB_LOG_FILE" >&2
      tail -n 20 "$MONGODB_LOG_FILE" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

# Send SIGTERM to the process in pid file $1 and wait up to $3 seconds for it to exit,
# then send SIGKILL.
stop_by_pid_file() {
  local pid_file=$1 name=$2 timeout=$3 pid deadline
  if ! pid_running "$pid_file"; then
    rm -f "$pid_file"
    return 0
  fi
  pid=$(cat "$pid_file")
  kill "$pid"
  deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "$name (pid $pid) did not stop within $timeout s of SIGTERM; sending SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$pid_file"
  echo "stopped $name (pid $pid)"
}

start_mongodb() {
  port_open "$mongodb_port" && return
  mkdir -p "$MONGODB_DATA_DIR"
  chmod 0700 "$mongodb_home"
  if [ ! -f "$mongodb_home/.users-created" ]; then
    # Users are created on a server without --auth, which then restarts with --auth.
    spawn_mongodb
    wait_mongodb_port
    "$python" "$here/datastores.py" provision-mongodb
    stop_by_pid_file "$MONGODB_PID_FILE" "the MongoDB stand-in (provisioning)" 30 >/dev/null
    touch "$mongodb_home/.users-created"
  fi
  spawn_mongodb --auth
  wait_mongodb_port
  "$python" "$here/datastores.py" wait-mongodb "$store_deadline" "$MONGODB_LOG_FILE"
  echo "MongoDB stand-in listening on 127.0.0.1:$mongodb_port" \
    "(pid $(cat "$MONGODB_PID_FILE"), log $MONGODB_LOG_FILE)"
}

redis_ping() {
  REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null \
    | grep -q '^PONG$'
}

write_redis_config() {
  mkdir -p "$REDIS_DATA_DIR"
  chmod 0700 "$redis_home"
  (
    umask 077
    cat > "$REDIS_CONFIG" <<EOF
# Redis of the drill stack, written by tests/stack/stack.sh (drill-only password).
port $redis_port
bind 127.0.0.1
protected-mode yes
requirepass $REDIS_PASSWORD
dir $REDIS_DATA_DIR
dbfilename dump.rdb
appendonly no
save 3600 1 300 100 60 10000
daemonize yes
pidfile $REDIS_PID_FILE
logfile $REDIS_LOG_FILE
EOF
  )
}

start_redis() {
  local deadline
  redis_ping && return
  write_redis_config
  redis-server "$REDIS_CONFIG"
  deadline=$((SECONDS + store_deadline))
  until redis_ping; do
    if [ $SECONDS -ge $deadline ]; then
      echo "Redis did not answer PING on 127.0.0.1:$redis_port within $store_deadline s;" \
        "see its log $REDIS_LOG_FILE" >&2
      tail -n 20 "$REDIS_LOG_FILE" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  echo "Redis listening on 127.0.0.1:$redis_port" \
    "(pid $(cat "$REDIS_PID_FILE"), log $REDIS_LOG_FILE)"
}

start_stores() {
  load_datastores_env
  start_mongodb
  start_redis
}

stop_store() {
  load_datastores_env
  case "$1" in
    mongodb) stop_by_pid_file "$MONGODB_PID_FILE" "the MongoDB stand-in" 30 ;;
    redis) stop_by_pid_file "$REDIS_PID_FILE" "Redis" 30 ;;
    *)
      echo "unknown data store '$1'; use mongodb or redis" >&2
      exit 2
      ;;
  esac
}

# Restart a running backend, so that its start-up steps run on freshly seeded data.
restart_backend() {
  [ "$(docker inspect -f '{{ .State.Running }}' truebond-backend 2>/dev/null)" = true ] \
    || return 0
  docker restart -t 10 truebond-backend >/dev/null
  wait_healthy
  echo "restarted truebond-backend, so that its start-up steps ran on the seeded data"
}

# Seed with datastores.py (options go to it) and restart the backend if it seeded.
seed_stores() {
  local output
  output=$("$python" "$here/datastores.py" seed "$@")
  if [ -n "$output" ]; then
    echo "$output"
    restart_backend
  fi
}

wait_healthy() {
  local deadline=$((SECONDS + 30))
  until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:18080/api/health', timeout=1)" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "backend did not answer on 127.0.0.1:18080 within 30 s" >&2
      docker logs --tail 20 truebond-backend >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

set_version() {
  local tag=$1
  sed -i -E "s|(image: truebond-backend:)[^[:space:]]+|\1$tag|" "$project/$compose_file"
  docker compose --project-directory "$project" -f "$project/$compose_file" \
    up -d --pull never --quiet-pull 2>&1 | grep -v -E '^ *(Container|Network)' || true
  wait_healthy
  echo "drill stack backend: $(docker inspect -f '{{ .Config.Image }}' truebond-backend)"
}

command=${1:-up}
case "$command" in
  up)
    hash=$(source_hash)
    create_repositories "$hash"
    start_stores
    seed_stores --if-empty
    build_images "$hash"
    set_version "${2:-v1.0.0}"
    ;;
  seed)
    start_stores
    seed_stores
    ;;
  data-status)
    load_datastores_env
    "$python" "$here/datastores.py" data-status
    ;;
  start-stores)
    start_stores
    ;;
  stop-store)
    [ $# -eq 2 ] || { echo "usage: stack.sh stop-store mongodb|redis" >&2; exit 2; }
    stop_store "$2"
    ;;
  set)
    [ $# -eq 2 ] || { echo "usage: stack.sh set VERSION" >&2; exit 2; }
    set_version "$2"
    ;;
  status)
    docker ps --filter label=com.docker.compose.project=truebond \
      --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}'
    ;;
  down)
    if [ -f "$project/$compose_file" ]; then
      docker compose --project-directory "$project" -f "$project/$compose_file" down --timeout 10
    fi
    if [ -f "$drill_home/datastores.env" ]; then
      stop_store redis
      stop_store mongodb
    fi
    rm -rf "$drill_home"
    echo "drill stack removed (images kept; remove them with: docker image rm truebond-backend:TAG)"
    ;;
  *)
    echo "unknown command '$command'; use up, set, seed, data-status, start-stores," \
      "stop-store, status or down" >&2
    exit 2
    ;;
esac
