package ch.ungleich.uncloud.hook.invocation;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.config.ConfigFile;
import ch.ungleich.uncloud.hook.engine.Rules;
import ch.ungleich.uncloud.hook.host.LinuxHost;
import ch.ungleich.uncloud.hook.log.Log;
import ch.ungleich.uncloud.hook.log.Syslog;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.hook.nft.NftRunner;
import ch.ungleich.uncloud.hook.nft.ProcessNftRunner;
import ch.ungleich.uncloud.hook.nwfilter.FilterrefRewriter;
import ch.ungleich.uncloud.hook.nwfilter.NwfilterBackend;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.state.Owner;
import ch.ungleich.uncloud.hook.state.Plan;
import ch.ungleich.uncloud.hook.state.StateStore;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.XmlException;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * libvirt's qemu hook contract: {@code DOMAIN OP SUBOP EXTRA} in argv, the domain XML on stdin.
 *
 * <p>libvirt calls the hook synchronously and reads its exit status: non-zero on {@code prepare},
 * {@code start}, {@code migrate} or {@code restore} aborts the operation (fail closed: a VM never
 * starts unprotected); non-zero on {@code reconnect} kills a running VM, so there failures are logged
 * and the exit is 0. For {@code migrate} and {@code restore} libvirt reads stdout as the domain XML
 * ("empty output is identical to copying the input XML"): stdout stays empty unless the
 * {@code <filterref>}s must change, and then it is the incoming XML with only those changed.
 *
 * <p>{@code backend = nwfilter}: libvirt instantiates our filters from the NICs' filterrefs, so the hook
 * writes no nft rules at all. {@code prepare} refuses a domain whose filterrefs disagree with its
 * metadata; {@code migrate} and {@code restore} print the XML with the filterrefs the metadata asks for,
 * so the destination filters exactly that before the VM runs there. With {@code backend = nft}, a
 * domain XML that carries filterrefs of ours gets them removed at {@code migrate}/{@code restore}
 * (the nft rules replace them); any other XML is never touched.
 *
 * <p>This class deliberately avoids picocli, JAXB and reflection: it runs three to four times per VM
 * start and its cost is JVM start plus one {@code nft -f}.
 */
public final class HookMain {
  private static final Pattern UUID_ELEMENT = Pattern.compile("<uuid>\\s*([0-9a-fA-F-]+)\\s*</uuid>");
  private final Map<String, String> env;
  private final PrintStream out;
  private final PrintStream err;
  private final Function<Config, NftRunner> runners;
  private final Log log;
  private AddressSource injected;
  private AddressSource source;

  /** For calls whose stdout nobody reads (tests of the other operations): stdout is discarded. */
  public HookMain(Map<String, String> env, PrintStream err, Function<Config, NftRunner> runners) {
    this(env, new PrintStream(OutputStream.nullOutputStream()), err, runners);
  }

  /** {@code out} is libvirt's: only ever the domain XML of {@code migrate}/{@code restore}. */
  public HookMain(Map<String, String> env, PrintStream out, PrintStream err, Function<Config, NftRunner> runners) {
    this(env, out, err, runners, Syslog.devLog());
  }

  /** With the system log given: cds-training's calls must not reach the host's journal. */
  HookMain(Map<String, String> env, PrintStream out, PrintStream err, Function<Config, NftRunner> runners, Syslog syslog) {
    this.env = env;
    this.out = out;
    this.err = err;
    this.runners = runners;
    this.log = new Log(err, syslog);
  }

  /** The real thing: the process environment and the nft binary from the configuration. */
  public static int main(String[] args, InputStream in, PrintStream out, PrintStream err) {
    return new HookMain(System.getenv(), out, err, c -> new ProcessNftRunner(c.nft())).run(args, in);
  }

  /** The address source to use instead of the one the settings name (hook-batch: one for every call). */
  HookMain source(AddressSource s) {
    this.injected = s;
    return this;
  }

  /** Runs one hook call; args are libvirt's (without our leading {@code hook}). */
  public int run(String[] args, InputStream in) {
    try {
      return call(args, in);
    } finally {
      log.close();
    }
  }

  private int call(String[] args, InputStream in) {
    String domain = args.length > 0 ? args[0] : "";
    String op = args.length > 1 ? args[1] : "";
    String sub = args.length > 2 ? args[2] : "";
    String extra = args.length > 3 ? args[3] : "";
    String event = op + " " + sub;
    // Always drain stdin: libvirt writes the whole XML and must not see a broken pipe.
    String xml;
    try {
      xml = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      xml = "";
    }
    Config config;
    try {
      config = ConfigFile.load(env);
      log.toFile(config.logFile());
      source = injected != null ? injected : AddressSource.of(config);
    } catch (UncloudException e) {
      return fail(event, domain, e);
    }
    try {
      boolean nwfilter = config.backend().equals("nwfilter");
      switch (event) {
        case "prepare begin" -> prepare(xml, config, nwfilter);
        case "migrate begin", "restore begin" -> rewrite(xml, config, nwfilter, event);
        case "start begin" -> {
          DomainPolicy p = policy(xml, config);
          if (!nwfilter) {
            apply(p, config, event);
          }
        }
        case "reconnect begin" -> {
          try {
            if (nwfilter) {
              check(xml, config);
            } else {
              apply(policy(xml, config), config, event);
            }
          } catch (UncloudException e) {
            log.error(domain + " " + event + ": " + e.getMessage() + " (the VM keeps running; run"
                + (nwfilter ? " 'uncloud-hook sync " + domain + "'" : " 'uncloud-hook reconcile'") + " once fixed)");
          }
        }
        case "stopped end", "release end" -> {
          if (!nwfilter) {
            remove(xml, domain, config, event, extra);
          }
        }
        default -> {
          // started, migrate/restore end and the rest need nothing from us
        }
      }
      return ExitCodes.OK;
    } catch (UncloudException e) {
      return fail(event, domain, e);
    } catch (RuntimeException e) {
      // never a stack trace into libvirt's error message; the line says what broke
      log.error(domain + " " + event + ": internal error: " + e);
      return ExitCodes.APPLY_FAILED;
    }
  }

  private int fail(String event, String domain, UncloudException e) {
    if (event.equals("reconnect begin")) {
      log.error(domain + " " + event + ": " + e.getMessage());
      return ExitCodes.OK;
    }
    String msg = e.getMessage();
    log.error(msg.startsWith(domain + " ") || msg.startsWith(domain + ":") ? msg : domain + ": " + msg);
    return e.exitCode();
  }

  private DomainPolicy policy(String xml, Config config) {
    return policy(read(xml), config);
  }

  private DomainPolicy policy(Domain d, Config config) {
    DomainPolicy p = source.policy(d);
    for (String w : p.warnings()) {
      log.warn(w);
    }
    return p;
  }

  private static Domain read(String xml) {
    try {
      return DomainReader.read(xml);
    } catch (XmlException e) {
      throw UncloudException.invalid(e.getMessage());
    }
  }

  /** nft: validate. nwfilter: also refuse filterrefs that disagree with the metadata. */
  private void prepare(String xml, Config config, boolean nwfilter) {
    Domain d = read(xml);
    DomainPolicy p = policy(d, config);
    List<NwfilterBackend.NicChange> plan = NwfilterBackend.plan(p, d, nwfilter);
    if (NwfilterBackend.inSync(plan)) {
      return;
    }
    if (nwfilter) {
      throw UncloudException.invalid(NwfilterBackend.mismatch(p, plan));
    }
    log.warn(p.name() + ": carries uncloud-* filterrefs, which backend = nft does not use; 'uncloud-hook sync "
        + p.name() + "' removes them");
  }

  /** reconnect with nwfilter: nothing to apply (libvirt re-instantiates the filters); say if they disagree. */
  private void check(String xml, Config config) {
    Domain d = read(xml);
    DomainPolicy p = policy(d, config);
    List<NwfilterBackend.NicChange> plan = NwfilterBackend.plan(p, d, true);
    if (!NwfilterBackend.inSync(plan)) {
      throw UncloudException.invalid(NwfilterBackend.mismatch(p, plan));
    }
  }

  /**
   * migrate/restore begin: prints the XML with the filterrefs the backend wants, or nothing when they
   * are right already (libvirt then keeps its own copy).
   */
  private void rewrite(String xml, Config config, boolean nwfilter, String event) {
    Domain d = read(xml);
    DomainPolicy p = policy(d, config);
    List<NwfilterBackend.NicChange> plan = NwfilterBackend.plan(p, d, nwfilter);
    if (NwfilterBackend.inSync(plan)) {
      return;
    }
    List<FilterrefRewriter.Edit> edits = new ArrayList<>();
    for (NwfilterBackend.NicChange c : plan) {
      if (c.kind() != NwfilterBackend.Kind.KEEP) {
        edits.add(new FilterrefRewriter.Edit(c.index(), c.wanted()));
      }
    }
    FilterrefRewriter.Result r = FilterrefRewriter.rewrite(xml, edits);
    out.print(r.xml());
    out.flush();
    log.info(p.name() + " " + event + ": rewrote filterrefs: " + NwfilterBackend.differences(plan) + " ("
        + log.elapsedMs() + " ms)");
  }

  private void apply(DomainPolicy p, Config config, String event) {
    Plan plan = rules(store(config), config).start(p);
    log.info(p.name() + " " + event + ": " + applied(p, plan) + " (" + log.elapsedMs() + " ms)");
    if (plan.note() != null) {
      log.warn(p.name() + " " + event + ": " + plan.note());
    }
  }

  /**
   * The log's account of an applied plan, per NIC: {@code filtering net0 52:54:00:aa:bb:01 vnet0 filter,
   * net1 ... mac-only; released vnet7}.
   */
  static String applied(DomainPolicy p, Plan plan) {
    List<String> nics = new ArrayList<>();
    for (NicPolicy n : p.nics()) {
      if (n.tap() != null && plan.claim().containsKey(n.tap())) {
        nics.add(n.name() + " " + n.mac() + " " + n.tap() + " " + n.mode().name().toLowerCase(Locale.ROOT).replace('_', '-'));
      }
    }
    return "filtering " + (nics.isEmpty() ? "no NIC" : String.join(", ", nics))
        + (plan.release().isEmpty() ? "" : "; released " + released(plan.release(), Map.of()));
  }

  /** {@code vnet0 (net0 52:54:00:aa:bb:01), vnet1}: each tap with the NIC its owner record names. */
  static String released(List<String> taps, Map<String, Owner> owners) {
    List<String> out = new ArrayList<>();
    for (String t : taps) {
      Owner o = owners.get(t);
      out.add(o == null ? t : t + " " + o.mac());
    }
    return String.join(", ", out);
  }

  private void remove(String xml, String domain, Config config, String event, String extra) {
    StateStore store = store(config);
    String uuid = uuidOf(xml, domain);
    // read for the log line only (the MACs), outside the lock: stop() decides under it
    Map<String, Owner> owners = new HashMap<>();
    for (String t : store.taps(uuid)) {
      Owner o = store.owner(t);
      if (o != null) {
        owners.put(t, o);
      }
    }
    Plan plan = rules(store, config).stop(uuid);
    if (!plan.release().isEmpty()) {
      log.info(domain + " " + event + " " + extra + ": removed " + released(plan.release(), owners) + " ("
          + log.elapsedMs() + " ms)");
    }
  }

  private static StateStore store(Config config) {
    return new StateStore(config.stateDir(), config.lockTimeoutSeconds());
  }

  private Rules rules(StateStore store, Config config) {
    return new Rules(store, runners.apply(config), config.vmTaps(), new LinuxHost()::links);
  }

  /**
   * Removal needs only the UUID, so it must work even when the metadata has since become invalid (an
   * operator's typo must not leave a stopped VM's rules behind): on a reader error, the UUID is taken
   * from the {@code <uuid>} element directly.
   */
  static String uuidOf(String xml, String domain) {
    String uuid;
    try {
      uuid = DomainReader.read(xml).uuid;
    } catch (XmlException e) {
      Matcher m = UUID_ELEMENT.matcher(xml);
      uuid = m.find() ? m.group(1) : null;
    }
    if (uuid == null || !uuid.strip().matches("[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")) {
      throw UncloudException.invalid(domain + ": domain XML has no valid <uuid>");
    }
    return PolicyBuilder.normaliseUuid(uuid);
  }
}
