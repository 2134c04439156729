// Command imagebuild makes a container image archive from a root filesystem directory,
// without a container engine: nothing can be pulled from the internet here, so the images of
// e2e/cluster's real nodes are built here and pushed to the stack's registry (imagebuild push).
//
//	imagebuild -rootfs DIR -tag NAME:TAG -out FILE.tar \
//	    [-entrypoint JSON] [-cmd JSON] [-user UID] [-workdir DIR] [-env K=V]... [-port N/tcp]...
//	imagebuild push -registry HOST:PORT FILE.tar...
//
// push sends each archive's image to the plain-HTTP registry HOST:PORT under its own
// repository and tag (docker.io/library/postgres:15 becomes HOST:PORT/library/postgres:15),
// where a node that mirrors every registry to HOST:PORT finds it by its original name.
//
// The archive is `docker save`'s format (what containerd imports), one layer holding DIR
// as it is on disk: modes, owners (uid/gid numbers), symlinks and hard links kept.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "push" {
		if err := push(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "imagebuild push: %v\n", err)
			os.Exit(1)
		}
		return
	}
	var (
		rootfs     = flag.String("rootfs", "", "directory whose content becomes the image's one layer")
		tag        = flag.String("tag", "", "image reference, e.g. docker.io/library/postgres:15")
		out        = flag.String("out", "", "archive to write")
		entrypoint = flag.String("entrypoint", "", "entrypoint as a JSON array")
		cmd        = flag.String("cmd", "", "command as a JSON array")
		user       = flag.String("user", "", "user the process runs as (uid or uid:gid)")
		workdir    = flag.String("workdir", "", "working directory")
		env, ports list
	)
	flag.Var(&env, "env", "environment variable K=V (repeatable)")
	flag.Var(&ports, "port", "exposed port, N/tcp (repeatable)")
	flag.Parse()
	if err := build(*rootfs, *tag, *out, *entrypoint, *cmd, *user, *workdir, env, ports); err != nil {
		fmt.Fprintf(os.Stderr, "imagebuild: %v\n", err)
		os.Exit(1)
	}
}

func jsonList(flagName, value string) ([]string, error) {
	if value == "" {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		return nil, fmt.Errorf("-%s: want a JSON array of strings: %w", flagName, err)
	}
	return v, nil
}

func build(rootfs, tag, out, entrypoint, cmd, user, workdir string, env, ports []string) error {
	if rootfs == "" || tag == "" || out == "" {
		return fmt.Errorf("-rootfs, -tag and -out are required")
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	layer, err := layerFromDir(rootfs)
	if err != nil {
		return fmt.Errorf("-rootfs %s: %w", rootfs, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	c := cfg.Config
	if c.Entrypoint, err = jsonList("entrypoint", entrypoint); err != nil {
		return err
	}
	if c.Cmd, err = jsonList("cmd", cmd); err != nil {
		return err
	}
	c.User, c.WorkingDir, c.Env = user, workdir, env
	if len(ports) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range ports {
			c.ExposedPorts[p] = struct{}{}
		}
	}
	// The files are this machine's (its binaries and libraries), so is the platform.
	cfg.Architecture, cfg.OS = runtime.GOARCH, "linux"
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: cfg.Architecture, OS: cfg.OS, RootFS: cfg.RootFS, Config: c,
	})
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

// layerFromDir is one uncompressed-tar layer of dir's tree (gzip is applied by the library).
func layerFromDir(dir string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	links := map[uint64]string{} // inode -> first path, for hard links
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		target := ""
		if info.Mode()&os.ModeSymlink != 0 {
			if target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, target)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			if info.Mode().IsRegular() && st.Nlink > 1 {
				if first, seen := links[st.Ino]; seen {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					links[st.Ino] = hdr.Name
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

func push(args []string) error {
	flags := flag.NewFlagSet("push", flag.ExitOnError)
	registry := flags.String("registry", "", "HOST:PORT of a plain-HTTP registry")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *registry == "" || flags.NArg() == 0 {
		return fmt.Errorf("usage: imagebuild push -registry HOST:PORT FILE.tar")
	}
	for _, file := range flags.Args() {
		manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for _, entry := range manifest {
			for _, tag := range entry.RepoTags {
				original, err := name.NewTag(tag)
				if err != nil {
					return fmt.Errorf("%s: tag %q: %w", file, tag, err)
				}
				img, err := tarball.ImageFromPath(file, &original)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				target, err := name.NewTag(*registry+"/"+original.RepositoryStr()+":"+original.TagStr(), name.Insecure)
				if err != nil {
					return err
				}
				if err := remote.Write(target, img); err != nil {
					return fmt.Errorf("pushing %s as %s: %w", tag, target, err)
				}
				fmt.Printf("%s -> %s\n", tag, target)
			}
		}
	}
	return nil
}
