package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real etcd cluster (Debian's {@code etcd-server}, 3.4) of N members for the lab: every member on
 * loopback inside the network namespace the hook runs in (the lab's hypervisor), on ports picked free,
 * with its own data directory under the lab's temp dir. Members are stopped by their own process
 * (never by name); {@link #close()} stops all and removes the data.
 */
public final class EtcdCluster implements AutoCloseable {
  /** Where Debian's package puts the server and the v3 client. */
  public static final String ETCD = "/usr/bin/etcd";
  public static final String ETCDCTL = "/usr/bin/etcdctl";

  private final String netns;
  private final Path dir;
  private final List<String> clientUrls = new ArrayList<>();
  private final List<Process> members = new ArrayList<>();
  private final boolean tls;

  private EtcdCluster(String netns, Path dir, boolean tls) {
    this.netns = netns;
    this.dir = dir;
    this.tls = tls;
  }

  /** Starts {@code n} members in {@code netns} and waits until the cluster has a leader. */
  public static EtcdCluster start(String netns, Path parent, int n) {
    return start(netns, parent, n, false);
  }

  /**
   * With {@code tls}: clients speak https and must show a certificate of the cluster's own CA
   * ({@code --client-cert-auth}); {@link #ca()}, {@link #clientCert()}, {@link #clientKey()} (PKCS#8 PEM,
   * made with openssl for this run).
   */
  public static EtcdCluster start(String netns, Path parent, int n, boolean tls) {
    if (!Files.isExecutable(Path.of(ETCD))) {
      throw new IllegalStateException(ETCD + " missing: apt-get install etcd-server etcd-client");
    }
    EtcdCluster c = new EtcdCluster(netns, parent.resolve("etcd"), tls);
    try {
      Files.createDirectories(c.dir);
      if (tls) {
        c.certificates();
      }
      List<String> peerUrls = new ArrayList<>();
      StringBuilder initial = new StringBuilder();
      for (int i = 0; i < n; i++) {
        c.clientUrls.add((tls ? "https" : "http") + "://127.0.0.1:" + freePort());
        peerUrls.add("http://127.0.0.1:" + freePort());
        initial.append(i == 0 ? "" : ",").append("m").append(i).append('=').append(peerUrls.get(i));
      }
      for (int i = 0; i < n; i++) {
        Path data = c.dir.resolve("m" + i);
        Files.createDirectories(data);
        Files.setPosixFilePermissions(data, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", netns, ETCD,
            "--name", "m" + i, "--data-dir", data.toString(),
            "--listen-client-urls", c.clientUrls.get(i), "--advertise-client-urls", c.clientUrls.get(i),
            "--listen-peer-urls", peerUrls.get(i), "--initial-advertise-peer-urls", peerUrls.get(i),
            "--initial-cluster", initial.toString(), "--initial-cluster-state", "new",
            "--initial-cluster-token", "uet-" + ProcessHandle.current().pid(),
            "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn"));
        if (tls) {
          cmd.addAll(List.of("--cert-file", c.dir.resolve("server.pem").toString(), "--key-file",
              c.dir.resolve("server.key").toString(), "--client-cert-auth", "--trusted-ca-file", c.ca().toString()));
        }
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectErrorStream(true).redirectOutput(c.dir.resolve("m" + i + ".log").toFile());
        c.members.add(pb.start());
      }
      c.waitHealthy(Duration.ofSeconds(30));
      return c;
    } catch (IOException | RuntimeException e) {
      c.close();
      throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
    }
  }

  /** A port nothing listens on right now (loopback ports are free in a fresh netns; this is belt and braces). */
  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  /** The client URLs, in member order, as {@code etcd_endpoints} wants them. */
  public List<String> endpoints() {
    return List.copyOf(clientUrls);
  }

  public String endpointsSetting() {
    return String.join(",", clientUrls);
  }

  /** Stops member {@code i} (SIGKILL: as a crashed host) and waits for its process to end. */
  public void stop(int i) {
    Process p = members.get(i);
    p.destroyForcibly();
    try {
      p.waitFor(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Writes a key through etcdctl (v3) against the members still running. */
  public void put(String key, String value) {
    etcdctl(value, "put", key).ok();
  }

  public void delete(String key) {
    etcdctl(null, "del", key).ok();
  }

  /** etcdctl in the cluster's netns against every endpoint; {@code stdin} as the value when not null. */
  public Proc.Result etcdctl(String stdin, String... args) {
    List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", netns, "env", "ETCDCTL_API=3", ETCDCTL,
        "--endpoints=" + endpointsSetting(), "--command-timeout=5s"));
    if (tls) {
      cmd.addAll(List.of("--cacert=" + ca(), "--cert=" + clientCert(), "--key=" + clientKey()));
    }
    cmd.addAll(List.of(args));
    return Proc.run(Duration.ofSeconds(20), stdin, cmd);
  }

  private void waitHealthy(Duration max) {
    long end = System.nanoTime() + max.toNanos();
    Proc.Result r = null;
    while (System.nanoTime() < end) {
      r = etcdctl(null, "endpoint", "health", "--cluster=false");
      if (r.exit() == 0) {
        return;
      }
      try {
        Thread.sleep(200);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    throw new IllegalStateException("etcd cluster not healthy after " + max + ": "
        + (r == null ? "" : r.describe()) + "\n" + logs());
  }

  public Path ca() {
    return dir.resolve("ca.pem");
  }

  public Path clientCert() {
    return dir.resolve("client.pem");
  }

  public Path clientKey() {
    return dir.resolve("client.key");
  }

  /** A CA, a server certificate for 127.0.0.1 and a client certificate, EC P-256, valid two days. */
  private void certificates() throws IOException {
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=uet-etcd-ca");
    for (String who : List.of("server", "client")) {
      Files.writeString(dir.resolve(who + ".ext"), who.equals("server")
          // etcd 3.4's JSON gateway dials its own gRPC port with the server certificate: with
          // --client-cert-auth that certificate needs clientAuth too (else every request is "HTTP 503")
          ? "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n" : "extendedKeyUsage=clientAuth\n");
      openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", who + ".key",
          "-out", who + ".csr", "-subj", "/CN=uet-" + who);
      openssl("x509", "-req", "-in", who + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
          who + ".pem", "-days", "2", "-extfile", who + ".ext");
    }
  }

  private void openssl(String... args) {
    List<String> cmd = new ArrayList<>(List.of("sh", "-c", "cd \"$0\" && exec openssl \"$@\"", dir.toString()));
    cmd.addAll(List.of(args));
    Proc.run(Duration.ofSeconds(30), null, cmd).ok();
  }

  /** Every member's log (for failure messages). */
  public String logs() {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < members.size(); i++) {
      try {
        b.append("--- etcd m").append(i).append('\n').append(Files.readString(dir.resolve("m" + i + ".log")));
      } catch (IOException e) {
        b.append("(no log for m").append(i).append(")\n");
      }
    }
    return b.toString();
  }

  @Override
  public void close() {
    for (int i = 0; i < members.size(); i++) {
      stop(i);
    }
    if (Files.exists(dir)) {
      try (Stream<Path> s = Files.walk(dir)) {
        s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
