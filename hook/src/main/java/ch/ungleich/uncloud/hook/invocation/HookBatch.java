package ch.ungleich.uncloud.hook.invocation;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.config.ConfigFile;
import ch.ungleich.uncloud.hook.engine.Rules;
import ch.ungleich.uncloud.hook.host.LinuxHost;
import ch.ungleich.uncloud.hook.log.Log;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.ProcessNftRunner;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.state.Plan;
import ch.ungleich.uncloud.hook.state.StateStore;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.XmlException;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * {@code uncloud-hook hook-batch reconnect SPOOLDIR}: every spooled {@code reconnect begin} in one JVM.
 *
 * <p>After a restart libvirtd calls the hook's {@code reconnect begin} for every running domain at once,
 * one process each. One JVM per call means N JVMs starting together on a host's few cores, N times the
 * memory, and N transactions queueing for the host lock (with lock_timeout, some give up). The launcher
 * (install/files/libvirt-hook) instead spools each call's XML and lets one waiter at a time
 * run this batch, which re-applies every spooled domain in ONE nft transaction and removes the files it
 * handled, so the other waiters find their file gone and exit: two or three JVMs for a whole restart.
 *
 * <p>Like a single {@code reconnect}, it always exits 0 (non-zero would make libvirt kill the VM):
 * an invalid domain XML is logged and skipped; if the combined transaction fails, every domain is
 * applied on its own and only the failing ones are logged; when the host lock cannot be had, the files
 * stay for the next waiter's run.
 */
public final class HookBatch {
  /** Files older than this were left by a launcher that died; they may describe a VM that is gone. */
  static final long STALE_SECONDS = 600;

  private static final String EVENT = "reconnect begin";
  private final Map<String, String> env;
  private final PrintStream err;
  private final Function<Config, NftRunner> runners;
  private final Log log;

  public HookBatch(Map<String, String> env, PrintStream err, Function<Config, NftRunner> runners) {
    this.env = env;
    this.err = err;
    this.runners = runners;
    this.log = new Log(err);
  }

  /** The real thing: the process environment and the nft binary from the configuration. */
  public static int main(String[] args, PrintStream err) {
    return new HookBatch(System.getenv(), err, c -> new ProcessNftRunner(c.nft())).run(args);
  }

  /** {@code args}: {@code reconnect SPOOLDIR}. Always returns 0. */
  public int run(String[] args) {
    try {
      return call(args);
    } finally {
      log.close();
    }
  }

  private int call(String[] args) {
    if (args.length != 2 || !args[0].equals("reconnect")) {
      log.error("usage: uncloud-hook hook-batch reconnect SPOOLDIR");
      return ExitCodes.OK;
    }
    Spool spool = new Spool(args[1]);
    List<Spool.Entry> entries;
    try {
      entries = spool.read(STALE_SECONDS);
    } catch (IOException e) {
      log.error("hook-batch reconnect: cannot read " + spool + ": " + e.getMessage());
      return ExitCodes.OK;
    }
    if (entries.isEmpty()) {
      return ExitCodes.OK;
    }
    boolean consumed = true;
    try {
      Config config = ConfigFile.load(env);
      log.toFile(config.logFile());
      consumed = handle(entries, config, spool);
    } catch (UncloudException e) {
      log.error("hook-batch reconnect: " + e.getMessage() + " (" + entries.size() + " domains not re-applied;"
          + " the VMs keep running; run 'uncloud-hook reconcile' once fixed)");
    } catch (RuntimeException e) {
      log.error("hook-batch reconnect: internal error: " + e);
    }
    if (consumed) {
      for (Spool.Entry e : entries) {
        try {
          spool.remove(e.file());
        } catch (IOException x) {
          log.error("hook-batch reconnect: cannot remove " + spool + "/" + e.file() + ": " + x.getMessage());
        }
      }
    }
    return ExitCodes.OK;
  }

  /** Returns false when the files must stay for the next run (the host lock was not to be had). */
  private boolean handle(List<Spool.Entry> entries, Config config, Spool spool) {
    List<DomainPolicy> policies = new ArrayList<>();
    // one source for the batch: with etcd, an unreachable cluster is found once, not once per domain
    AddressSource source = AddressSource.of(config);
    for (Spool.Entry e : entries) {
      if (e.stale()) {
        log.warn("hook-batch reconnect: " + spool + "/" + e.file() + " is older than " + STALE_SECONDS
            + " s (its launcher died); ignored");
        continue;
      }
      if (config.backend().equals("nwfilter")) {
        // nothing to apply (libvirt re-instantiates the filters): each domain checked as its own call would
        new HookMain(env, err, runners).source(source).run(new String[] {name(e), "reconnect", "begin", "-"},
            new ByteArrayInputStream(e.xml().getBytes(StandardCharsets.UTF_8)));
        continue;
      }
      try {
        policies.add(policy(e.xml(), source));
      } catch (UncloudException x) {
        log.error(name(e) + " " + EVENT + ": " + x.getMessage() + " (the VM keeps running; run"
            + " 'uncloud-hook reconcile' once fixed)");
      }
    }
    if (policies.isEmpty()) {
      return true;
    }
    Rules rules = new Rules(new StateStore(config.stateDir(), config.lockTimeoutSeconds()), runners.apply(config),
        config.vmTaps(), new LinuxHost()::links);
    Rules.Batch batch = rules.startAll(policies);
    if (batch.notLocked() != null) {
      log.error("hook-batch reconnect: " + batch.notLocked().getMessage() + "; " + policies.size()
          + " domains stay spooled for the next run");
      return false;
    }
    if (batch.combinedFailed() != null) {
      log.error("hook-batch reconnect: the combined transaction for " + policies.size() + " domains failed ("
          + batch.combinedFailed().getMessage() + "); applying one domain at a time");
    }
    for (int i = 0; i < batch.applied().size(); i++) {
      DomainPolicy p = batch.applied().get(i);
      Plan plan = batch.plans().get(i);
      log.info(p.name() + " " + EVENT + ": " + HookMain.applied(p, plan));
      if (plan.note() != null) {
        log.warn("hook-batch reconnect: " + plan.note());
      }
    }
    for (Rules.Failure f : batch.failures()) {
      log.error(f.policy().name() + " " + EVENT + ": " + f.error().getMessage() + " (the VM keeps running; run"
          + " 'uncloud-hook reconcile' once fixed)");
    }
    if (batch.together()) {
      log.info("hook-batch reconnect: " + policies.size() + " domains from " + spool + ", one transaction ("
          + log.elapsedMs() + " ms)");
    } else {
      log.info("hook-batch reconnect: " + policies.size() + " domains from " + spool + ", one transaction each"
          + " after the combined one failed; " + batch.applied().size() + " applied (" + log.elapsedMs() + " ms)");
    }
    return true;
  }

  private static DomainPolicy policy(String xml, AddressSource source) {
    Domain d;
    try {
      d = DomainReader.read(xml);
    } catch (XmlException e) {
      throw UncloudException.invalid(e.getMessage());
    }
    return source.policy(d);
  }

  /** How log lines name a spooled call: the domain's name when the XML has one, else the file. */
  private static String name(Spool.Entry e) {
    int a = e.xml().indexOf("<name>");
    int b = e.xml().indexOf("</name>");
    if (a >= 0 && b > a + 6 && b - a < 80) {
      return e.xml().substring(a + 6, b).strip();
    }
    return e.file();
  }
}
