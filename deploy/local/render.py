"""Configuration files generated into .local/: Kafka, nginx, SeaweedFS's S3 identities and
supervisord."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from install import chown_to, ferretdb_binary, pg_bindir, seaweedfs_binary
from parley_messaging.access import BROKER, SUPER_USERS
from services_catalog import kafka_passwords, s3_credentials, service_programs, upstreams
from settings import HERE, ROOT, Program, Settings, is_root


def kafka_properties(s: Settings) -> Path:
    """The broker's configuration: clients authenticate with SASL/SCRAM-SHA-512 on CLIENT, the
    StandardAuthorizer refuses whatever parley_messaging.access does not grant. The broker
    talks to itself (transaction markers) as `broker` over CLIENT and to its controller over
    SASL/PLAIN: SCRAM credentials live in the metadata log the controller serves, so the
    controller listener cannot use them."""
    path = s.state / "kafka" / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = kafka_passwords(s)[BROKER]
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    path.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}",
                f"listeners=CLIENT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.kafka_controller_port}",
                f"advertised.listeners=CLIENT://{s.host}:{s.kafka_port}",
                # explicit: transaction markers must not go to the controller listener
                "inter.broker.listener.name=CLIENT",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512",
                f"listener.name.client.scram-sha-512.sasl.jaas.config={scram} required"
                f' username="{BROKER}" password="{secret}";',
                "sasl.mechanism.controller.protocol=PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                f"listener.name.controller.plain.sasl.jaas.config={plain} required"
                f' username="{BROKER}" password="{secret}" user_{BROKER}="{secret}";',
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users={';'.join(f'User:{name}' for name in SUPER_USERS)}",
                "allow.everyone.if.no.acl.found=false",
                f"log.dirs={s.state / 'kafka' / 'data'}",
                f"num.partitions={s.partitions}",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.retention.hours=-1",
                "",
            ]
        )
    )
    path.chmod(0o600)  # it holds the broker's secret
    return path


def kafka_config_digest(s: Settings) -> str:
    path = s.state / "kafka" / "server.properties"
    content = path.read_bytes() if path.exists() else b""
    return hashlib.sha256(content).hexdigest()[:16]


# upstreams whose requests carry a conversation: chat writes for one conversation go to one
# replica while it is up (methods.conf sets $parley_conversation; docker-compose and
# Kubernetes get theirs from deploy/nginx/compose-chat-servers.conf and
# kubernetes-chat-servers.conf). Consistent (ketama) hashing moves only the dead replica's
# conversations when one goes: here every replica is a server of its own address, which is
# what nginx's ring is keyed by. An empty key (POST /v1/conversations, no id yet) goes
# round-robin.
HASHED_UPSTREAMS = {"chat_cmd": "hash $parley_conversation consistent;"}


def upstream_block(name: str, addresses: list[str]) -> str:
    # max_fails=0: a failed request does not mark a replica down for 10 s (nginx's default);
    # proxy_next_upstream (routes.conf) retries the next one for that request, and the next
    # request tries the dead one again, which refuses a connection at once on loopback
    servers = " ".join(f"server {address} max_fails=0;" for address in addresses)
    balance = HASHED_UPSTREAMS.get(name, "") if len(addresses) > 1 else ""
    return f"upstream {name} {{ {balance + ' ' if balance else ''}{servers} keepalive 32; }}"


def nginx_conf(s: Settings) -> Path:
    prefix = s.state / "nginx"
    for sub in ("temp", "logs"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    upstream_blocks = "\n    ".join(
        upstream_block(name, addresses) for name, addresses in upstreams(s).items()
    )
    temp = prefix / "temp"
    conf.write_text(f"""# generated by deploy/local/cluster.py; routes: deploy/nginx/routes.conf
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {s.logs}/nginx-error.log warn;
# every open push stream holds two connections (client and upstream) for as long as it lives
worker_rlimit_nofile 20000;
events {{ worker_connections 8192; }}
http {{
    access_log {s.logs}/nginx-access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    client_max_body_size 64k;
    {upstream_blocks}
    include {ROOT / "deploy" / "nginx" / "methods.conf"};
    server {{
        listen {s.host}:{s.gateway_port};
        include {ROOT / "deploy" / "nginx" / "routes.conf"};
    }}
}}
""")
    if is_root():  # workers run as nobody and must write their temp files
        chown_to(temp, "nobody")
    return conf


def seaweedfs_s3_config(s: Settings) -> Path:
    """The S3 gateway's one identity (chat-api's key pair, generated into .local/)."""
    access_key, secret_key = s3_credentials(s)
    identity = {
        "name": "parley-chat",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path = s.state / "seaweedfs" / "s3.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"identities": [identity]}, indent=2) + "\n")
    path.chmod(0o600)
    return path


def seaweedfs_command(s: Settings) -> str:
    """One `weed server` process: master, volume server, filer and the S3 gateway, all bound
    to the cluster's host; the master on PARLEY_SEAWEEDFS_PORT, volume and filer on the next
    two ports (each also on its port + 10000 for gRPC), S3 on PARLEY_S3_PORT."""
    data = s.state / "seaweedfs"
    (data / "data").mkdir(parents=True, exist_ok=True)
    master, volume, filer = s.seaweedfs_port, s.seaweedfs_port + 1, s.seaweedfs_port + 2
    return " ".join(
        [
            f"{seaweedfs_binary(s)} server -ip={s.host} -ip.bind={s.host} -dir={data / 'data'}",
            f"-master.port={master} -volume.port={volume} -filer -filer.port={filer}",
            f"-s3 -s3.port={s.s3_port} -s3.config={seaweedfs_s3_config(s)}",
            # no Iceberg or Lance catalogues (their own ports), no telemetry (offline anyway)
            "-s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false",
            # volumes of 256 MiB as many as the disk holds (files are sparse), and a quick stop
            "-master.volumeSizeLimitMB=256 -volume.max=0 -volume.preStopSeconds=1",
            # the Unix sockets of filer and S3 beside the data, not in a /tmp shared by clusters
            f"-filer.localSocket={data / 'filer.sock'} -s3.localSocket={data / 's3.sock'}",
        ]
    )


def nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def programs(s: Settings, kafka_libs: Path) -> list[Program]:
    bindir = pg_bindir()
    assert bindir is not None
    python = sys.executable
    infra = [
        Program(
            "postgres",
            f"{bindir / 'postgres'} -D {s.pg_data} -c listen_addresses={s.host} -c port={s.pg_port}"
            f" -c unix_socket_directories={s.pg_data.parent} -c max_connections=400"
            " -c shared_buffers=512MB -c wal_buffers=16MB -c max_wal_size=2GB"
            " -c logging_collector=off",
            user="postgres" if is_root() else None,
            stopsignal="INT",
            priority=10,
        ),
        Program(
            "kafka",
            # the configuration's digest on the command line: `make up` restarts the broker
            # when its configuration changed (supervisord restarts changed programs)
            f"java -Xms{s.kafka_heap} -Xmx{s.kafka_heap} -XX:+UseG1GC -cp {kafka_libs}/*"
            f" -Dparley.config={kafka_config_digest(s)}"
            f" -Dlog4j.configuration=file:{HERE / 'kafka' / 'log4j.properties'}"
            f" kafka.Kafka {s.state / 'kafka' / 'server.properties'}",
            stopwaitsecs=30,
            priority=10,
        ),
        Program(
            "ferretdb",
            # the wrapper (deploy/local/ferretdb) adds the _id expression index and runs SQLite
            # with synchronous=NORMAL by default (-id-index, -sqlite-synchronous)
            f"{ferretdb_binary(s)} -listen-addr {s.host}:{s.mongo_port}"
            # warn logs a full dump of every unsupported command (PyMongo's endSessions on
            # each close): megabytes of noise and CPU; errors only
            f" -sqlite-dir {s.state / 'ferretdb'}/ -log-level error",
            priority=20,
        ),
        Program("seaweedfs", seaweedfs_command(s), priority=20),
        Program(
            "nginx",
            f"{nginx_bin()} -p {s.state / 'nginx'} -c {s.state / 'nginx' / 'nginx.conf'}"
            " -g 'daemon off;'",
            stopsignal="QUIT",
            priority=30,
        ),
        Program(
            "smtp-sink",
            f"{python} {HERE / 'smtp_sink.py'} --host {s.host} --port {s.smtp_port}"
            f" --dir {s.state / 'mail'}",
            priority=30,
        ),
    ]
    return infra + [p.program for p in service_programs(s)]


def supervisord_conf(s: Settings, progs: list[Program]) -> Path:
    conf = s.state / "supervisord.conf"
    lines = [
        "; generated by deploy/local/cluster.py",
        "[unix_http_server]",
        f"file={s.sock}",
        "[supervisord]",
        f"logfile={s.logs / 'supervisord.log'}",
        f"pidfile={s.state / 'supervisord.pid'}",
        f"directory={ROOT}",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{s.sock}",
    ]
    for p in progs:
        env = ",".join(f'{k}="{v}"' for k, v in p.env.items())
        lines += [
            f"[program:{p.name}]",
            f"command={p.command}",
            f"directory={p.directory}",
            f"priority={p.priority}",
            f"autostart={str(p.autostart).lower()}",
            "autorestart=true",
            "startsecs=2",
            "startretries=1000",  # a crashed dependency must not leave a service FATAL
            f"stopsignal={p.stopsignal}",
            f"stopwaitsecs={p.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={s.logs / (p.name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
        ]
        if p.user:
            lines.append(f"user={p.user}")
        if env:
            lines.append(f"environment={env}")
    conf.write_text("\n".join(lines) + "\n")
    return conf
