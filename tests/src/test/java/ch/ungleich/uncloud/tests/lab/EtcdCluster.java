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
  private final List<List<String>> commands = new ArrayList<>();
  private final boolean tls;
  private final String host;
  /** Gateway i ({@code etcd gateway}, an L4 proxy) forwards to member i only; null when not running. */
  private final List<String> gatewayUrls = new ArrayList<>();
  private final List<Process> gateways = new ArrayList<>();

  private EtcdCluster(String netns, Path dir, boolean tls, String host) {
    this.netns = netns;
    this.dir = dir;
    this.tls = tls;
    this.host = host;
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
    return start(netns, parent, n, tls, "127.0.0.1");
  }

  /**
   * Members whose client URLs are on {@code host} (an address of {@code netns}: other namespaces of
   * the lab reach them there); peers stay on loopback.
   */
  public static EtcdCluster start(String netns, Path parent, int n, boolean tls, String host) {
    if (!Files.isExecutable(Path.of(ETCD))) {
      throw new IllegalStateException(ETCD + " missing: apt-get install etcd-server etcd-client");
    }
    EtcdCluster c = new EtcdCluster(netns, parent.resolve("etcd"), tls, host);
    try {
      Files.createDirectories(c.dir);
      if (tls) {
        c.certificates();
      }
      List<String> peerUrls = new ArrayList<>();
      StringBuilder initial = new StringBuilder();
      for (int i = 0; i < n; i++) {
        c.clientUrls.add((tls ? "https" : "http") + "://" + host + ":" + freePort());
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
        c.commands.add(List.copyOf(cmd));
        c.members.add(c.launch(cmd, "m" + i));
      }
      c.waitHealthy(Duration.ofSeconds(30));
      return c;
    } catch (IOException | RuntimeException e) {
      c.close();
      throw e instanceof IOException io ? new UncheckedIOException(io) : (RuntimeException) e;
    }
  }

  private Process launch(List<String> cmd, String log) throws IOException {
    ProcessBuilder pb = new ProcessBuilder(cmd);
    pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve(log + ".log").toFile()));
    return pb.start();
  }

  /** Starts member {@code i} again (stopped by {@link #stop}), on its data: it rejoins the cluster. */
  public void restart(int i) {
    if (members.get(i).isAlive()) {
      return;
    }
    try {
      members.set(i, launch(commands.get(i), "m" + i));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Starts every member that is stopped and waits until the cluster is healthy. */
  public void restartAll() {
    for (int i = 0; i < members.size(); i++) {
      restart(i);
    }
    waitHealthy(Duration.ofSeconds(30));
  }

  /**
   * One {@code etcd gateway} per member, on {@code host}, forwarding to that member only: clients of
   * the gateways can be cut off (stop them) while the cluster itself stays up. Ports stay the same
   * across stops and starts.
   */
  public void startGateways() {
    try {
      for (int i = 0; i < clientUrls.size(); i++) {
        if (gatewayUrls.size() <= i) {
          gatewayUrls.add("http://" + host + ":" + freePort());
          gateways.add(null);
        }
        if (gateways.get(i) != null && gateways.get(i).isAlive()) {
          continue;
        }
        String member = clientUrls.get(i).replaceFirst("^https?://", "");
        String listen = gatewayUrls.get(i).replaceFirst("^https?://", "");
        gateways.set(i, launch(List.of("ip", "netns", "exec", netns, ETCD, "gateway", "start", "--endpoints=" + member,
            "--listen-addr=" + listen, "--retry-delay=200ms"), "gw" + i));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    long end = System.nanoTime() + Duration.ofSeconds(10).toNanos();
    for (String g : gatewayUrls) {
      String[] hp = g.replaceFirst("^https?://", "").split(":");
      while (Proc.run(Duration.ofSeconds(5), null, List.of("ip", "netns", "exec", netns, "bash", "-c",
          "exec 3<>/dev/tcp/" + hp[0] + "/" + hp[1])).exit() != 0) {
        if (System.nanoTime() > end) {
          throw new IllegalStateException("etcd gateway " + g + " does not listen:\n" + logs());
        }
        sleepMs(50);
      }
    }
  }

  /** Stops every gateway (SIGKILL): their clients' connections break, the members keep running. */
  public void stopGateways() {
    for (Process p : gateways) {
      if (p != null) {
        p.destroyForcibly();
        try {
          p.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  /** The gateways' URLs, as {@code etcd_endpoints} wants them. */
  public String gatewaysSetting() {
    return String.join(",", gatewayUrls);
  }

  /** The store's current revision (etcdctl against the members). */
  public long revision() {
    String out = etcdctl(null, "get", "--write-out=json", "uet-no-such-key").ok().out();
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"revision\":(\\d+)").matcher(out);
    if (!m.find()) {
      throw new IllegalStateException("no revision in " + out);
    }
    return Long.parseLong(m.group(1));
  }

  private static void sleepMs(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
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

  /**
   * Writes a key through etcdctl (v3) against the members still running. A put that arrives while the
   * members elect a new leader (the old one just stopped) can time out: tried up to three times.
   */
  public void put(String key, String value) {
    Proc.Result r = null;
    for (int i = 0; i < 3; i++) {
      r = etcdctl(value, "put", key);
      if (r.exit() == 0) {
        return;
      }
    }
    r.ok();
  }

  /** Waits until every running member is healthy (has a leader): after a member was stopped. */
  public void awaitHealthy() {
    waitHealthy(Duration.ofSeconds(30));
  }

  public void delete(String key) {
    etcdctl(null, "del", key).ok();
  }

  /**
   * etcdctl in the cluster's netns against every running member (etcdctl 3.4 does not move on from a
   * stopped first endpoint within its timeout); {@code stdin} as the value when not null.
   */
  public Proc.Result etcdctl(String stdin, String... args) {
    List<String> live = new ArrayList<>();
    for (int i = 0; i < members.size(); i++) {
      if (members.get(i).isAlive()) {
        live.add(clientUrls.get(i));
      }
    }
    List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", netns, "env", "ETCDCTL_API=3", ETCDCTL,
        "--endpoints=" + String.join(",", live.isEmpty() ? clientUrls : live), "--command-timeout=5s"));
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
    for (int i = 0; i < members.size() + gateways.size(); i++) {
      String name = i < members.size() ? "m" + i : "gw" + (i - members.size());
      try {
        b.append("--- etcd ").append(name).append('\n').append(Files.readString(dir.resolve(name + ".log")));
      } catch (IOException e) {
        b.append("(no log for ").append(name).append(")\n");
      }
    }
    return b.toString();
  }

  @Override
  public void close() {
    stopGateways();
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
