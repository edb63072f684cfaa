package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.libvirt.LibvirtSession;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.hook.source.EtcdClient;
import ch.ungleich.uncloud.hook.source.EtcdValue;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.XmlException;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook etcd import}: every defined domain's metadata to its etcd key. */
@Command(
    name = "import",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Writes every domain's metadata (persistent definition, else live) to its etcd key, in the",
      "per-NIC form, for moving a host to source = etcd. Each value is validated first; domains",
      "without metadata, with invalid metadata, or whose key exists already (unless --overwrite)",
      "are left out and listed."
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:every domain with metadata written or already there",
      "1:some domains' metadata is invalid: those were not written, the others were",
      "2:wrong command line",
      "3:libvirt could not be asked",
      "5:no etcd endpoint answered"
    })
final class EtcdImportCommand implements Callable<Integer> {
  @Mixin CommonOptions common;

  @Option(names = "--overwrite", description = "Replace keys that exist already (default: leave them).")
  boolean overwrite;

  @Spec CommandSpec spec;

  /**
   * One domain of the {@code --json} list.
   *
   * @param outcome {@code written}, {@code exists} (left as it is), {@code same} (equal already),
   *     {@code no-metadata} or {@code invalid}
   * @param revision etcd's revision after the write, 0 when nothing was written
   */
  record Entry(String domain, String uuid, String key, String outcome, String value, String error, long revision) {}

  @Override
  public Integer call() {
    Config cfg = common.loadConfig();
    EtcdClient etcd = EtcdCommand.client(cfg);
    List<Entry> entries = new ArrayList<>();
    try (LibvirtSession s = LibvirtSession.open(common.uri())) {
      List<LibvirtSession.DomainXml> all = new ArrayList<>(s.domains(false));
      all.sort((a, b) -> a.name().compareTo(b.name()));
      for (LibvirtSession.DomainXml x : all) {
        entries.add(one(x, cfg, etcd));
      }
    }
    PrintWriter out = spec.commandLine().getOut();
    if (common.json()) {
      Json.print(out, entries);
    } else {
      for (Entry e : entries) {
        out.println(e.domain() + " " + e.key() + ": " + e.outcome() + (e.error() == null ? "" : ": " + e.error()));
      }
      out.flush();
    }
    return entries.stream().anyMatch(e -> e.outcome().equals("invalid")) ? ExitCodes.INVALID : ExitCodes.OK;
  }

  private Entry one(LibvirtSession.DomainXml x, Config cfg, EtcdClient etcd) {
    Domain d;
    try {
      d = DomainReader.read(x.configXml() != null ? x.configXml() : x.liveXml());
    } catch (XmlException e) {
      return new Entry(x.name(), x.uuid(), null, "invalid", null, e.getMessage(), 0);
    }
    String key = AddressSource.key(d, cfg);
    if (d.metadata == null || d.metadata.firewall == null) {
      return new Entry(x.name(), x.uuid(), key, "no-metadata", null, null, 0);
    }
    String value;
    try {
      value = EtcdValue.render(d.metadata.firewall);
      EtcdCommand.validate(value, d, key, cfg);
    } catch (UncloudException e) {
      return new Entry(x.name(), x.uuid(), key, "invalid", null, e.getMessage(), 0);
    }
    String old = etcd.get(key);
    if (value.equals(old)) {
      return new Entry(x.name(), x.uuid(), key, "same", value, null, 0);
    }
    if (old != null && !overwrite) {
      return new Entry(x.name(), x.uuid(), key, "exists", old, null, 0);
    }
    return new Entry(x.name(), x.uuid(), key, "written", value, null, etcd.put(key, value));
  }
}
