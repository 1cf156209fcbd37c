//! The function symbols and loadable segments of an ELF file, read with
//! positioned reads of only its headers and symbol tables, within a byte
//! budget checked before each read (a section header may claim any size).

use super::open::Refusal;
use object::elf;
use object::pod;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::{Endian, Endianness};
use std::fs::File;
use std::mem::size_of;
use std::os::unix::fs::FileExt;

/// Function symbols of one binary, sorted by address.
#[derive(Debug, Default)]
pub struct Symbols {
    /// (file offset start, file offset end, virtual address start) of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
    /// (address, size, name start, name end in `names`).
    functions: Vec<(u64, u64, u32, u32)>,
    /// (address, name start, name end) of the other names of an address in `functions`.
    aliases: Vec<(u64, u32, u32)>,
    /// (address, name start, name end) of the global and weak functions: what
    /// another object (or the dynamic linker) can call by name. A file-local
    /// `static int malloc(int)` is named in stacks but is never the allocator.
    exports: Vec<(u64, u32, u32)>,
    /// The functions' names, mangled, one after the other.
    names: Vec<u8>,
}

impl Symbols {
    /// Reads the symbols of `file` (`size` bytes), holding at most `budget` bytes of it at a time.
    pub fn read(file: &File, size: u64, budget: u64) -> Result<Symbols, Refusal> {
        let mut head = [0u8; 64];
        let len = head.len().min(size as usize);
        file.read_exact_at(&mut head[..len], 0).map_err(|_| "cannot be read")?;
        let reader = Reader { file, size, budget, spent: 0 };
        match head.get(4) {
            Some(&elf::ELFCLASS32) => reader.symbols::<elf::FileHeader32<Endianness>>(&head[..len]),
            Some(&elf::ELFCLASS64) => reader.symbols::<elf::FileHeader64<Endianness>>(&head[..len]),
            _ => Err("not an ELF file"),
        }
    }

    /// What the symbols hold in memory.
    pub fn bytes(&self) -> usize {
        self.segments.len() * size_of::<(u64, u64, u64)>()
            + self.functions.len() * size_of::<(u64, u64, u32, u32)>()
            + (self.aliases.len() + self.exports.len()) * size_of::<(u64, u32, u32)>()
            + self.names.len()
    }

    /// Adds the functions of `other`, the symbols of the same binary's
    /// separate debug file (its `.symtab`, which a stripped binary lacks): its
    /// segments hold no bytes, so this binary's stay the ones that map offsets.
    pub fn add_functions(&mut self, other: Symbols) {
        let Ok(shift) = u32::try_from(self.names.len()) else { return };
        let shifted = |from: u32, to: u32| Some((from.checked_add(shift)?, to.checked_add(shift)?));
        let mut functions: Vec<(u64, u64, u32, u32)> = std::mem::take(&mut self.functions);
        functions
            .extend(other.functions.iter().filter_map(|&(a, size, f, t)| shifted(f, t).map(|(f, t)| (a, size, f, t))));
        self.aliases.extend(other.aliases.iter().filter_map(|&(a, f, t)| shifted(f, t).map(|(f, t)| (a, f, t))));
        self.exports.extend(other.exports.iter().filter_map(|&(a, f, t)| shifted(f, t).map(|(f, t)| (a, f, t))));
        self.names.extend_from_slice(&other.names);
        functions.sort_by_key(|f| f.0);
        for f in functions {
            match self.functions.last() {
                Some(last) if last.0 == f.0 => self.aliases.push((f.0, f.2, f.3)),
                _ => self.functions.push(f),
            }
        }
    }

    /// The file offset of the global or weak function named `name` (exactly,
    /// mangled), when the binary defines it in a loadable segment: where a
    /// uprobe goes. File-local functions of that name are not it.
    pub fn file_offset_of(&self, name: &str) -> Option<u64> {
        let named =
            |from: u32, to: u32| self.names.get(from as usize..to as usize).is_some_and(|n| n == name.as_bytes());
        let address = self.exports.iter().find(|&&(_, from, to)| named(from, to)).map(|e| e.0)?;
        let &(start, end, vaddr) =
            self.segments.iter().find(|&&(s, e, v)| v <= address && address - v < e.saturating_sub(s))?;
        let offset = address - vaddr + start;
        (offset < end).then_some(offset)
    }

    /// The virtual address (as symbols and debug info name it) of file offset `offset`.
    pub fn address_of(&self, offset: u64) -> Option<u64> {
        let &(start, _, vaddr) = self.segments.iter().find(|(s, e, _)| *s <= offset && offset < *e)?;
        Some(offset - start + vaddr)
    }

    /// The (demangled) function holding file offset `offset`.
    pub fn lookup(&self, offset: u64) -> Option<String> {
        let address = self.address_of(offset)?;
        let i = self.functions.partition_point(|f| f.0 <= address).checked_sub(1)?;
        let &(function, size, from, to) = self.functions.get(i)?;
        if size != 0 && address >= function.saturating_add(size) {
            return None;
        }
        let name = self.names.get(from as usize..to as usize)?;
        Some(crate::demangle::demangle(&String::from_utf8_lossy(name)))
    }
}

/// The DWARF sections of an ELF file (name without the leading dot, bytes,
/// decompressed), and whether it is little-endian.
#[derive(Debug, Default)]
pub struct DebugSections {
    pub little_endian: bool,
    pub sections: Vec<(String, Vec<u8>)>,
}

/// The DWARF sections of `file` (`size` bytes) that `wanted` names (`debug_info`, …),
/// holding at most `budget` bytes of them; none when the file has no debug info.
pub fn debug_sections(file: &File, size: u64, budget: u64, wanted: &[&str]) -> Result<DebugSections, Refusal> {
    let mut head = [0u8; 64];
    let len = head.len().min(size as usize);
    file.read_exact_at(&mut head[..len], 0).map_err(|_| "cannot be read")?;
    let reader = Reader { file, size, budget, spent: 0 };
    match head.get(4) {
        Some(&elf::ELFCLASS32) => reader.debug_sections::<elf::FileHeader32<Endianness>>(&head[..len], wanted),
        Some(&elf::ELFCLASS64) => reader.debug_sections::<elf::FileHeader64<Endianness>>(&head[..len], wanted),
        _ => Err("not an ELF file"),
    }
}

/// The GNU build id of `file` (`size` bytes), from its note sections; `None`
/// when it has none. Reads the section headers and notes only.
pub fn build_id(file: &File, size: u64) -> Option<Vec<u8>> {
    let mut head = [0u8; 64];
    let len = head.len().min(size as usize);
    file.read_exact_at(&mut head[..len], 0).ok()?;
    // Notes are small; a binary whose headers and notes exceed this has no usable build id.
    let reader = Reader { file, size, budget: 1 << 20, spent: 0 };
    match head.get(4) {
        Some(&elf::ELFCLASS32) => reader.build_id::<elf::FileHeader32<Endianness>>(&head[..len]),
        Some(&elf::ELFCLASS64) => reader.build_id::<elf::FileHeader64<Endianness>>(&head[..len]),
        _ => None,
    }
}

/// Positioned reads of one file, charged to a budget before they allocate.
struct Reader<'a> {
    file: &'a File,
    size: u64,
    budget: u64,
    spent: u64,
}

impl Reader<'_> {
    /// `len` bytes at `offset`, when they lie in the file and fit the budget.
    fn take(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Refusal> {
        self.charge(len)?;
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err("not a well-formed ELF file");
        }
        let mut bytes = vec![0u8; len as usize];
        self.file.read_exact_at(&mut bytes, offset).map_err(|_| "cannot be read")?;
        Ok(bytes)
    }

    fn charge(&mut self, bytes: u64) -> Result<(), Refusal> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.budget {
            return Err("symbol tables larger than the budget");
        }
        Ok(())
    }

    /// The section headers of the file whose header is `head` (and its endianness).
    fn section_headers<H: FileHeader<Endian = Endianness>>(
        &mut self,
        header: &H,
        endian: Endianness,
    ) -> Result<Vec<H::SectionHeader>, Refusal> {
        let count = usize::from(header.e_shnum(endian));
        if count > 0 && usize::from(header.e_shentsize(endian)) != size_of::<H::SectionHeader>() {
            return Err("not a well-formed ELF file");
        }
        let bytes = self.take(header.e_shoff(endian).into(), (count * size_of::<H::SectionHeader>()) as u64)?;
        let (sections, _) = pod::slice_from_bytes::<H::SectionHeader>(&bytes, count).map_err(|_| "not an ELF file")?;
        Ok(sections.to_vec())
    }

    fn build_id<H: FileHeader<Endian = Endianness>>(mut self, head: &[u8]) -> Option<Vec<u8>> {
        let header = H::parse(head).ok()?;
        let endian = header.endian().ok()?;
        let sections = self.section_headers(header, endian).ok()?;
        for notes in sections.iter().filter(|s| s.sh_type(endian) == elf::SHT_NOTE) {
            let bytes = self.take(notes.sh_offset(endian).into(), notes.sh_size(endian).into()).ok()?;
            let mut rest = bytes.as_slice();
            // Each note: name size, descriptor size, type, then the name and descriptor, 4-aligned.
            while rest.len() >= 12 {
                let word =
                    |at: usize| rest.get(at..at + 4).map(|w| endian.read_u32_bytes([w[0], w[1], w[2], w[3]]) as usize);
                let (name_size, desc_size, kind) = (word(0)?, word(4)?, word(8)?);
                let name_end = 12usize.checked_add(name_size.checked_add(3)? & !3)?;
                let desc_end = name_end.checked_add(desc_size.checked_add(3)? & !3)?;
                let name = rest.get(12..12 + name_size)?;
                if kind == elf::NT_GNU_BUILD_ID as usize && name == b"GNU\0" && (1..=64).contains(&desc_size) {
                    return rest.get(name_end..name_end + desc_size).map(<[u8]>::to_vec);
                }
                rest = rest.get(desc_end..)?;
            }
        }
        None
    }

    fn debug_sections<H: FileHeader<Endian = Endianness>>(
        mut self,
        head: &[u8],
        wanted: &[&str],
    ) -> Result<DebugSections, Refusal> {
        let header = H::parse(head).map_err(|_| "not an ELF file")?;
        let endian = header.endian().map_err(|_| "not an ELF file")?;
        let sections = self.section_headers(header, endian)?;
        let mut out = DebugSections { little_endian: endian == Endianness::Little, sections: Vec::new() };
        let Some(names) = sections.get(usize::from(header.e_shstrndx(endian))) else { return Ok(out) };
        let names = self.take(names.sh_offset(endian).into(), names.sh_size(endian).into())?;
        for section in &sections {
            let Some(name) = names.get(section.sh_name(endian) as usize..) else { continue };
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            let Some(name) = name.strip_prefix(b".").and_then(|n| std::str::from_utf8(n).ok()) else { continue };
            if !wanted.contains(&name) || section.sh_type(endian) == elf::SHT_NOBITS {
                continue;
            }
            let bytes = self.take(section.sh_offset(endian).into(), section.sh_size(endian).into())?;
            let flags: u64 = section.sh_flags(endian).into();
            let bytes =
                if flags & u64::from(elf::SHF_COMPRESSED) != 0 { self.inflate::<H>(&bytes, endian)? } else { bytes };
            out.sections.push((name.to_owned(), bytes));
        }
        Ok(out)
    }

    /// A `SHF_COMPRESSED` section's bytes, inflated (zlib only), its stated size charged first.
    fn inflate<H: FileHeader<Endian = Endianness>>(
        &mut self,
        bytes: &[u8],
        endian: Endianness,
    ) -> Result<Vec<u8>, Refusal> {
        use object::read::elf::CompressionHeader;
        use std::io::Read;
        let (header, data) =
            pod::from_bytes::<H::CompressionHeader>(bytes).map_err(|_| "not a well-formed ELF file")?;
        if header.ch_type(endian) != elf::ELFCOMPRESS_ZLIB {
            return Err("debug sections compressed other than with zlib");
        }
        let stated: u64 = header.ch_size(endian).into();
        self.charge(stated)?;
        let mut out = Vec::new();
        // The stated size bounds what is inflated, whatever the stream holds.
        flate2::read::ZlibDecoder::new(data)
            .take(stated)
            .read_to_end(&mut out)
            .map_err(|_| "a compressed debug section that does not inflate")?;
        Ok(out)
    }

    fn symbols<H: FileHeader<Endian = Endianness>>(mut self, head: &[u8]) -> Result<Symbols, Refusal> {
        let header = H::parse(head).map_err(|_| "not an ELF file")?;
        let endian = header.endian().map_err(|_| "not an ELF file")?;
        let mut out = Symbols::default();

        let count = usize::from(header.e_phnum(endian));
        if count > 0 && usize::from(header.e_phentsize(endian)) != size_of::<H::ProgramHeader>() {
            return Err("not a well-formed ELF file");
        }
        let bytes = self.take(header.e_phoff(endian).into(), (count * size_of::<H::ProgramHeader>()) as u64)?;
        let (programs, _) = pod::slice_from_bytes::<H::ProgramHeader>(&bytes, count).map_err(|_| "not an ELF file")?;
        for p in programs.iter().filter(|p| p.p_type(endian) == elf::PT_LOAD) {
            let (offset, size): (u64, u64) = (p.p_offset(endian).into(), p.p_filesz(endian).into());
            if size > 0 {
                out.segments.push((offset, offset.saturating_add(size), p.p_vaddr(endian).into()));
            }
        }

        let sections = self.section_headers(header, endian)?;
        for table in sections.iter().filter(|s| matches!(s.sh_type(endian), elf::SHT_SYMTAB | elf::SHT_DYNSYM)) {
            let strings = sections.get(table.sh_link(endian) as usize).ok_or("not a well-formed ELF file")?;
            let data = self.take(table.sh_offset(endian).into(), table.sh_size(endian).into())?;
            let strings = self.take(strings.sh_offset(endian).into(), strings.sh_size(endian).into())?;
            let (symbols, _) = pod::slice_from_bytes::<H::Sym>(&data, data.len() / size_of::<H::Sym>())
                .map_err(|_| "not a well-formed ELF file")?;
            for sym in symbols {
                let address: u64 = sym.st_value(endian).into();
                let function = matches!(sym.st_type(), elf::STT_FUNC | elf::STT_GNU_IFUNC);
                if !function || address == 0 || sym.st_shndx(endian) == elf::SHN_UNDEF {
                    continue;
                }
                let Some(name) = strings.get(sym.st_name(endian) as usize..) else { continue };
                let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
                self.charge((size_of::<(u64, u64, u32, u32)>() + name.len()) as u64)?;
                let from = u32::try_from(out.names.len()).map_err(|_| "symbol tables larger than the budget")?;
                out.names.extend_from_slice(name);
                let to = u32::try_from(out.names.len()).map_err(|_| "symbol tables larger than the budget")?;
                out.functions.push((address, sym.st_size(endian).into(), from, to));
                if matches!(sym.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK | elf::STB_GNU_UNIQUE) {
                    self.charge(size_of::<(u64, u32, u32)>() as u64)?;
                    out.exports.push((address, from, to));
                }
            }
            // The raw tables are dropped here: only what was kept stays charged.
            self.spent = self.spent.saturating_sub((data.len() + strings.len()) as u64);
        }
        out.functions.sort_by_key(|f| f.0);
        // One name per address for lookups; the others (malloc is also
        // __libc_malloc) stay findable by name.
        let mut kept: Vec<(u64, u64, u32, u32)> = Vec::with_capacity(out.functions.len());
        for f in out.functions.drain(..) {
            match kept.last() {
                Some(last) if last.0 == f.0 => out.aliases.push((f.0, f.2, f.3)),
                _ => kept.push(f),
            }
        }
        out.functions = kept;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (File, u64) {
        let path = format!("{}/tests/fixtures/bin/a_cachesvc", env!("CARGO_MANIFEST_DIR"));
        let file = File::open(path).unwrap();
        let size = file.metadata().unwrap().len();
        (file, size)
    }

    #[test]
    fn reads_the_fixture_binary_and_refuses_past_the_budget() {
        let (file, size) = fixture();
        let symbols = Symbols::read(&file, size, 1 << 20).unwrap();
        let names: Vec<String> = (0..symbols.functions.len())
            .map(|i| {
                let (_, _, from, to) = symbols.functions[i];
                String::from_utf8_lossy(&symbols.names[from as usize..to as usize]).into_owned()
            })
            .collect();
        assert!(names.iter().any(|n| n == "leak_request_buffer"), "{names:?}");
        // Its file offset names it back, and an undefined import (malloc, from libc) has none.
        let offset = symbols.file_offset_of("leak_request_buffer").unwrap();
        assert_eq!(symbols.lookup(offset).as_deref(), Some("leak_request_buffer"));
        assert_eq!(symbols.file_offset_of("malloc"), None);
        // A file-local function (`static void say`, LOCAL in readelf -s) is named in stacks but
        // has no offset by name: a `static int malloc(int)` must never be taken for the allocator.
        let say = names.iter().position(|n| n == "say").unwrap();
        let offset = symbols.functions[say].0; // the text segment's file offsets are its addresses
        assert_eq!(symbols.address_of(offset), Some(offset));
        assert_eq!(symbols.lookup(offset).as_deref(), Some("say"));
        assert_eq!(symbols.file_offset_of("say"), None);
        assert_eq!(Symbols::read(&file, size, 1000).err(), Some("symbol tables larger than the budget"));
    }

    #[test]
    fn refuses_what_is_not_elf_or_lies_about_its_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, b"#!/bin/sh\necho hi\n").unwrap();
        let file = File::open(&text).unwrap();
        assert_eq!(Symbols::read(&file, 18, 1 << 20).err(), Some("not an ELF file"));
        // The fixture with its section header offset pointing past the end of the file.
        let (fixture, size) = fixture();
        let mut bytes = vec![0u8; size as usize];
        fixture.read_exact_at(&mut bytes, 0).unwrap();
        bytes[0x28..0x30].copy_from_slice(&(size * 4).to_le_bytes());
        let lying = dir.path().join("lying");
        std::fs::write(&lying, &bytes).unwrap();
        let file = File::open(&lying).unwrap();
        assert_eq!(Symbols::read(&file, size, 1 << 30).err(), Some("not a well-formed ELF file"));
    }
}
